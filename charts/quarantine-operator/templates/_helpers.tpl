{{/* Names and labels shared by every template. */}}

{{- define "quarantine-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "quarantine-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "quarantine-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quarantine-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "quarantine-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "quarantine-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quarantine-operator
{{- end -}}

{{- define "quarantine-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "quarantine-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "quarantine-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "quarantine-operator.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{- define "quarantine-operator.leaseName" -}}
{{- default (printf "%s-leader" (include "quarantine-operator.fullname" .)) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/* The Secrets the operator may read, as a list; empty means "any Secret of the namespace". */}}
{{- define "quarantine-operator.readableSecrets" -}}
{{- $names := list -}}
{{- range $s := list .Values.secrets.rabbitmq .Values.secrets.cephKeyring .Values.secrets.openstackCredentials -}}
{{- if $s.name }}{{ $names = append $names $s.name }}{{ end -}}
{{- end -}}
{{- range .Values.secrets.extra }}{{ $names = append $names . }}{{ end -}}
{{- toJson (uniq $names) -}}
{{- end -}}

{{/* Pod and container security settings (values), shared by the operator and the test pod. */}}
{{- define "quarantine-operator.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "quarantine-operator.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}
