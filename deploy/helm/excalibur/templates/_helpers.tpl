{{- define "excalibur.name" -}}{{ .Release.Name }}-excalibur{{- end -}}
{{- define "excalibur.labels" -}}
app.kubernetes.io/name: excalibur
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
