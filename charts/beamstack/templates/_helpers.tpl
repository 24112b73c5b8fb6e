{{/* The webhook's Service name is fixed: certificates name it, and a stable name survives re-installs. */}}
{{- define "beamstack.serviceName" -}}beam-webhook{{- end -}}

{{- define "beamstack.labels" -}}
app.kubernetes.io/name: beamstack-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: beamstack
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "beamstack.selectorLabels" -}}
app.kubernetes.io/name: beamstack-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "beamstack.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Where the API server calls: the Service, or a URL for a webhook outside the cluster. */}}
{{- define "beamstack.clientConfig" -}}
{{- $root := index . 0 -}}
{{- $path := index . 1 -}}
{{- $kind := index . 2 -}}
{{- if $root.Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/" $root.Values.webhook.url) $path | quote }}
{{- else }}
service:
  name: {{ include "beamstack.serviceName" $root }}
  namespace: {{ $root.Release.Namespace }}
  path: {{ $path | quote }}
  port: 443
{{- end }}
{{- if eq $root.Values.certificates.mode "provided" }}
caBundle: {{ required "certificates.caBundle is required in provided mode (base64 of the CA's PEM)" $root.Values.certificates.caBundle }}
{{- else if eq $root.Values.certificates.mode "selfManaged" }}
{{- /* The webhook sets the caBundle; an upgrade keeps the one it set instead of blanking it until the next check. */}}
{{- $existing := lookup "admissionregistration.k8s.io/v1" $kind "" "beamstack" }}
{{- range (($existing | default dict).webhooks | default list) }}
{{- if and (eq .name "runners.mutate.beamstack.dev") .clientConfig.caBundle }}
caBundle: {{ .clientConfig.caBundle }}
{{- else if and (eq .name "runners.validate.beamstack.dev") .clientConfig.caBundle }}
caBundle: {{ .clientConfig.caBundle }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* kube-system, the release namespace, any configured ones, and namespaces carrying the opt-out label. */}}
{{- define "beamstack.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      - kube-system
      - {{ .Release.Namespace }}
      {{- range .Values.webhook.excludedNamespaces }}
      - {{ . }}
      {{- end }}
  - key: {{ .Values.webhook.optOutLabel.key }}
    operator: NotIn
    values: [{{ .Values.webhook.optOutLabel.value | quote }}]
{{- end -}}

{{- define "beamstack.certManagerAnnotation" -}}
{{- if eq .Values.certificates.mode "certManager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/beam-webhook
{{- end }}
{{- end -}}
