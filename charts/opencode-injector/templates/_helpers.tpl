{{/* The name of every object: the release name, unless it lacks the chart's. */}}
{{- define "opencode-injector.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selects the injector's pods; never changes across upgrades. */}}
{{- define "opencode-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "opencode-injector.labels" -}}
{{ include "opencode-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: opencode-injector
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "opencode-injector.image" -}}
{{- .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end -}}

{{/* The Service's DNS name: the serving certificate's name and SNI. */}}
{{- define "opencode-injector.serviceHost" -}}
{{ include "opencode-injector.fullname" . }}.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* cert-manager's CA injector fills both webhooks' caBundle from this. */}}
{{- define "opencode-injector.injectCAFrom" -}}
cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "opencode-injector.fullname" . }}-serving
{{- end -}}

{{- define "opencode-injector.tlsSecret" -}}
{{ include "opencode-injector.fullname" . }}-tls
{{- end -}}
