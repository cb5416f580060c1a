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

{{/* The flags the Deployment sets itself, by the value that sets them ("" when fixed). */}}
{{- define "opencode-injector.chartFlags" -}}
--cert-dir: ""
--port: ""
--metrics-bind-address: ""
--health-probe-bind-address: ""
--leader-elect: ""
--self-container: ""
--allowed-git-hosts: injection.allowedGitHosts
--default-secret: injection.defaultSecret
--default-requests: injection.defaultRequests
--default-limits: injection.defaultLimits
--seed-image: injection.seedImage
--zap-log-level: logLevel
{{- end -}}

{{/* extraArgs come after the chart's flags, and a repeated flag's last value
wins: refuse one that would silently override the chart's. */}}
{{- define "opencode-injector.checkExtraArgs" -}}
{{- $flags := include "opencode-injector.chartFlags" . | fromYaml -}}
{{- range . -}}
{{- $flag := regexReplaceAll "=.*$" . "" -}}
{{- if hasKey $flags $flag -}}
{{- with get $flags $flag -}}
{{- fail (printf "extraArgs repeats %s, which the chart sets: set the value %s instead" $flag .) -}}
{{- else -}}
{{- fail (printf "extraArgs repeats %s, which the chart fixes (the Service, probes and certificate depend on it): remove it" $flag) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A duration of hours, minutes and seconds (2160h, 1h30m), in seconds. */}}
{{- define "opencode-injector.seconds" -}}
{{- $h := regexFind "[0-9]+h" . | trimSuffix "h" | default "0" | int -}}
{{- $m := regexFind "[0-9]+m" . | trimSuffix "m" | default "0" | int -}}
{{- $s := regexFind "[0-9]+s" . | trimSuffix "s" | default "0" | int -}}
{{- add (mul $h 3600) (mul $m 60) $s -}}
{{- end -}}
