{{/*
Names and labels.
*/}}
{{- define "cloakroom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cloakroom.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cloakroom.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloakroom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cloakroom.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cloakroom.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cloakroom.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cloakroom.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cloakroom.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The directory of the file session store: the only place the process writes.
*/}}
{{- define "cloakroom.dataDir" -}}/var/lib/cloakroom{{- end }}

{{/*
session.store as the configuration gets it.
*/}}
{{- define "cloakroom.sessionStore" -}}
{{- default (printf "file:%s/sessions.db" (include "cloakroom.dataDir" .)) .Values.session.store }}
{{- end }}

{{/*
"true" when the store is the embedded file store (it needs the data volume).
*/}}
{{- define "cloakroom.fileStore" -}}
{{- if hasPrefix "file:" (include "cloakroom.sessionStore" .) }}true{{ end }}
{{- end }}

{{/*
"true" when every pod sees the same sessions: Redis or Valkey over the
network, or the cookie store, which keeps no server state. file:, memory and
a unix socket (a per-pod Redis) are one pod's own.
*/}}
{{- define "cloakroom.sharedStore" -}}
{{- $s := include "cloakroom.sessionStore" . }}
{{- if or (eq $s "cookie") (regexMatch "^(redis|rediss|redis-sentinel|rediss-sentinel|valkey|valkeys)://" $s) }}true{{ end }}
{{- end }}

{{/*
The most pods the release can run at once.
*/}}
{{- define "cloakroom.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.maxReplicas }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{- define "cloakroom.secretName" -}}
{{- default (include "cloakroom.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/*
Whether each optional Secret entry exists: from the values the chart's own
Secret is made of, or as declared for an existing Secret.
*/}}
{{- define "cloakroom.hasPreviousKey" -}}
{{- if .Values.secret.existingSecret }}{{ if .Values.secret.existingSecretEntries.sessionKeyPrevious }}true{{ end }}{{ else if .Values.secret.sessionKeyPrevious }}true{{ end }}
{{- end }}
{{- define "cloakroom.hasAdminToken" -}}
{{- if .Values.secret.existingSecret }}{{ if .Values.secret.existingSecretEntries.adminToken }}true{{ end }}{{ else if .Values.secret.adminToken }}true{{ end }}
{{- end }}
{{- define "cloakroom.hasRedisPassword" -}}
{{- if .Values.secret.existingSecret }}{{ if .Values.secret.existingSecretEntries.redisPassword }}true{{ end }}{{ else if .Values.secret.redisPassword }}true{{ end }}
{{- end }}

{{/*
Refusals: every combination that would render a release that cannot work,
or one that loses sessions silently.
*/}}
{{- define "cloakroom.validate" -}}
{{- $store := include "cloakroom.sessionStore" . }}
{{- if and (gt (int (include "cloakroom.maxReplicas" .)) 1) (not (include "cloakroom.sharedStore" .)) }}
{{- fail (printf "session.store: %d replicas need a store they share, but the %s store is each pod's own: set session.store to a redis:// or rediss:// URL (or cookie), or run one replica" (int (include "cloakroom.maxReplicas" .)) (regexReplaceAll ":.*" $store "")) }}
{{- end }}
{{- if and (regexMatch "^[a-z-]+://[^/]*@" $store) (not (contains "${" $store)) }}
{{- fail "session.store: holds user info but no ${VAR} reference: put the password in secret.redisPassword and write redis://:${REDIS_PASSWORD}@host:6379/0, since this value is stored in a ConfigMap" }}
{{- end }}
{{- if and (contains "${REDIS_PASSWORD}" $store) (not (include "cloakroom.hasRedisPassword" .)) }}
{{- fail "session.store: references ${REDIS_PASSWORD} but the Secret has no redis-password: set secret.redisPassword (or secret.existingSecretEntries.redisPassword)" }}
{{- end }}
{{- if and (hasPrefix "file:" $store) (not (hasPrefix (printf "file:%s/" (include "cloakroom.dataDir" .)) $store)) }}
{{- fail (printf "session.store: a file: store must lie under %s/, the only writable directory (the root filesystem is read-only)" (include "cloakroom.dataDir" .)) }}
{{- end }}
{{- range $key := list "listen" "admin_listen" "admin_token" "admin_token_file" }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s: is set by the chart; remove it (see ports and secret in values.yaml)" $key) }}
{{- end }}
{{- end }}
{{- range $key := list "store" "keys" }}
{{- if hasKey (index $.Values.config "session" | default dict) $key }}
{{- fail (printf "config.session.%s: is set by the chart; remove it (use session.store and secret.sessionKey in values.yaml)" $key) }}
{{- end }}
{{- end }}
{{- range $key := list "client_secret" "client_secret_file" }}
{{- if hasKey (index $.Values.config "oidc" | default dict) $key }}
{{- fail (printf "config.oidc.%s: is set by the chart; remove it (use secret.oidcClientSecret or secret.existingSecret)" $key) }}
{{- end }}
{{- end }}
{{- if not .Values.secret.existingSecret }}
{{- if not .Values.secret.sessionKey }}
{{- fail "secret.sessionKey: required (or secret.existingSecret): write base64: followed by the output of openssl rand -base64 32" }}
{{- end }}
{{- if not .Values.secret.oidcClientSecret }}
{{- fail "secret.oidcClientSecret: required (or secret.existingSecret): the client secret registered with the identity provider" }}
{{- end }}
{{- end }}
{{- $drain := 30 }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) $drain) }}
{{- fail (printf "terminationGracePeriodSeconds: must exceed preStopSleepSeconds + %d (the drain), so %d at least" $drain (add (int .Values.preStopSleepSeconds) $drain 1)) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (not (kindIs "invalid" (index $pdb "minAvailable"))) (not (kindIs "invalid" (index $pdb "maxUnavailable"))) }}
{{- fail "podDisruptionBudget: set maxUnavailable or minAvailable, not both (null the other)" }}
{{- end }}
{{- end }}

{{/*
cloakroom.yaml: config with the keys the chart owns.
*/}}
{{- define "cloakroom.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "listen" (printf ":%d" (int .Values.ports.http)) }}
{{- $_ = set $cfg "admin_listen" (printf "0.0.0.0:%d" (int .Values.ports.admin)) }}
{{- if include "cloakroom.hasAdminToken" . }}
{{- $_ = set $cfg "admin_token" "${ADMIN_TOKEN}" }}
{{- end }}
{{- $session := deepCopy (index .Values.config "session" | default dict) }}
{{- $_ = set $session "store" (include "cloakroom.sessionStore" .) }}
{{- $keys := list "${SESSION_KEY}" }}
{{- if include "cloakroom.hasPreviousKey" . }}
{{- $keys = append $keys "${SESSION_KEY_PREVIOUS}" }}
{{- end }}
{{- $_ = set $session "keys" $keys }}
{{- $_ = set $cfg "session" $session }}
{{- $oidc := deepCopy (index .Values.config "oidc" | default dict) }}
{{- $_ = set $oidc "client_secret" "${OIDC_CLIENT_SECRET}" }}
{{- $_ = set $cfg "oidc" $oidc }}
{{- toYaml $cfg }}
{{- end }}
