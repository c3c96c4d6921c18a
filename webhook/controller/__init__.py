"""The companion backup controller (issue in progress): scheduling decisions first."""
