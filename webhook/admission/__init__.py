"""The admission webhooks: the validating and mutating HTTPS server in front of the rule engine."""
