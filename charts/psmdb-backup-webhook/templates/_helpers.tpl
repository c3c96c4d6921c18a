{{/* Object names are fixed, as in the kustomize install: the webhook configurations and ClusterRoles are
cluster-wide, so one release per cluster. */}}
{{- define "psmdb.name" -}}psmdb-backup-webhook{{- end }}

{{/* Selector labels of a component: exactly the kustomize install's (selectors are immutable). */}}
{{- define "psmdb.selector" -}}
app.kubernetes.io/name: psmdb-backup-webhook
app.kubernetes.io/component: {{ . }}
{{- end }}

{{/* Pod template labels: the kustomize install's. Call with (dict "ctx" $ "component" "webhook" "extra" map). */}}
{{- define "psmdb.podLabels" -}}
{{ include "psmdb.selector" .component }}
app.kubernetes.io/part-of: psmdb-backup-webhook
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* metadata labels and annotations of every object. Call with (dict "ctx" $ "component" "webhook"); component may
be empty. */}}
{{- define "psmdb.meta" -}}
labels:
  app.kubernetes.io/name: psmdb-backup-webhook
  app.kubernetes.io/part-of: psmdb-backup-webhook
  {{- with .component }}
  app.kubernetes.io/component: {{ . }}
  {{- end }}
  app.kubernetes.io/instance: {{ .ctx.Release.Name }}
  app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
  app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
  helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
  {{- with .ctx.Values.commonLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .ctx.Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "psmdb.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Pod Security `restricted`: fixed, not values, so no setting can weaken it. */}}
{{- define "psmdb.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "psmdb.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Scheduling and pull secrets of a pod spec. Call with (dict "ctx" $ "v" .Values.webhook). */}}
{{- define "psmdb.scheduling" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* namespaceSelector of both webhooks. */}}
{{- define "psmdb.namespaceSelector" -}}
{{- with .Values.admission.namespaceSelectorLabels }}
matchLabels:
  {{- toYaml . | nindent 2 }}
{{- end }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- toYaml (prepend .Values.admission.excludedNamespaces .Release.Namespace | uniq) | nindent 6 }}
  - key: psmdb-backup-webhook.io/ignore
    operator: NotIn
    values: ["true"]
  {{- with .Values.admission.namespaceSelectorExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{- define "psmdb.certManager" -}}
{{- eq .Values.certificates.provider "cert-manager" -}}
{{- end }}
