{{/* The name of the release's objects. */}}
{{- define "atoll.name" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "atoll.labels" -}}
app.kubernetes.io/name: atoll
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.mode }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels that select the control plane's pods. */}}
{{- define "atoll.selector" -}}
app.kubernetes.io/name: atoll
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{/* An image reference: repository:tag, the tag defaulting to appVersion.
     Called with (list $image $root). */}}
{{- define "atoll.image" -}}
{{- $img := index . 0 -}}{{- $root := index . 1 -}}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* In-cluster DNS name of a Service of the release: (list $root suffix). */}}
{{- define "atoll.svcHost" -}}
{{- $root := index . 0 -}}
{{- printf "%s%s.%s.svc" (include "atoll.name" $root) (index . 1) $root.Release.Namespace -}}
{{- end -}}

{{/* The API flags both modes share. */}}
{{- define "atoll.apiArgs" -}}
- --api-addr=:{{ .Values.api.port }}
{{- if eq .Values.api.tls "generated" }}
- --api-tls
- --api-tls-san={{ include "atoll.svcHost" (list . "") }}
{{- else if eq .Values.api.tls "secret" }}
- --api-tls-cert=/etc/atoll/api-tls/tls.crt
- --api-tls-key=/etc/atoll/api-tls/tls.key
{{- else }}
- --api-insecure
{{- end }}
{{- if .Values.api.tokenSecret.name }}
- --api-token-file=/etc/atoll/api-token/{{ .Values.api.tokenSecret.key }}
{{- end }}
- --log-level={{ .Values.log.level }}
- --log-format={{ .Values.log.format }}
{{- end -}}

{{/* The API volumes both modes share (mounts, then volumes). */}}
{{- define "atoll.apiVolumeMounts" -}}
{{- if eq .Values.api.tls "secret" }}
- name: api-tls
  mountPath: /etc/atoll/api-tls
  readOnly: true
{{- end }}
{{- if .Values.api.tokenSecret.name }}
- name: api-token
  mountPath: /etc/atoll/api-token
  readOnly: true
{{- end }}
{{- end -}}

{{- define "atoll.apiVolumes" -}}
{{- if eq .Values.api.tls "secret" }}
- name: api-tls
  secret:
    secretName: {{ .Values.api.tlsSecretName }}
{{- end }}
{{- if .Values.api.tokenSecret.name }}
- name: api-token
  secret:
    secretName: {{ .Values.api.tokenSecret.name }}
{{- end }}
{{- end -}}

{{/* The container's probes, ports' scheme following api.tls. */}}
{{- define "atoll.probes" -}}
{{- $scheme := ternary "HTTP" "HTTPS" (eq .Values.api.tls "insecure") -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: api
    scheme: {{ $scheme }}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: api
    scheme: {{ $scheme }}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end -}}

{{/* Pod settings both modes share. */}}
{{- define "atoll.podSpecCommon" -}}
serviceAccountName: {{ include "atoll.name" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The container's security context. */}}
{{- define "atoll.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}
