{{/*
pfc.name: the chart name, or nameOverride. Truncated to 63 characters (DNS label limit).
*/}}
{{- define "pfc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
pfc.fullname: the release-qualified name used as the prefix of every resource.
The release name alone when it already contains the chart name (`helm install pfc charts/pfc` -> `pfc`).
*/}}
{{- define "pfc.fullname" -}}
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

{{/*
pfc.componentFullname: `<fullname>-<component>`, the fullname cut to 55 characters first so the
result stays a valid DNS label. Call with (dict "ctx" $ "component" "jobs").
*/}}
{{- define "pfc.componentFullname" -}}
{{- printf "%s-%s" (include "pfc.fullname" .ctx | trunc 55 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
pfc.chart: `<name>-<version>` for the helm.sh/chart label.
*/}}
{{- define "pfc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
pfc.selectorLabels: immutable labels that select a component's pods (name, instance, component).
Call with (dict "ctx" $ "component" "jobs").
*/}}
{{- define "pfc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pfc.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
pfc.labels: the full label set of a component's resources (selector labels + version, chart,
managed-by, part-of and commonLabels). Call with (dict "ctx" $ "component" "jobs"); an optional
"version" replaces pfc's version (Redis uses its own image tag).
*/}}
{{- define "pfc.labels" -}}
helm.sh/chart: {{ include "pfc.chart" .ctx }}
{{ include "pfc.selectorLabels" . }}
app.kubernetes.io/version: {{ .version | default (include "pfc.imageTag" .ctx) | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: pfc
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
pfc.imageTag: image.tag, or the chart's appVersion.
*/}}
{{- define "pfc.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
pfc.image: the pfc image reference (`repo@digest` when a digest is set, else `repo:tag`).
*/}}
{{- define "pfc.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "pfc.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
pfc.redisImage: the Redis image reference.
*/}}
{{- define "pfc.redisImage" -}}
{{- with .Values.redis.image }}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository .tag }}
{{- end }}
{{- end }}
{{- end }}

{{/*
pfc.serviceAccountName: the ServiceAccount the pfc pods run as.
*/}}
{{- define "pfc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pfc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
pfc.grpcUrl: in-cluster URL of a gRPC component, `http://<fullname>-<component>:<port>`.
Short Service names: every component runs in the release namespace.
Call with (dict "ctx" $ "component" "auth").
*/}}
{{- define "pfc.grpcUrl" -}}
{{- $port := (index .ctx.Values .component).port }}
{{- printf "http://%s:%v" (include "pfc.componentFullname" .) $port }}
{{- end }}

{{/*
pfc.grpcServices: the pfc gRPC services and the role serving each, as YAML
(`services: [{name, role}]`), from files/grpc-services.yaml (generated from the protos by
scripts/chart/grpc-services.py). Use: (include "pfc.grpcServices" . | fromYaml).services
*/}}
{{- define "pfc.grpcServices" -}}
{{- $doc := .Files.Get "files/grpc-services.yaml" | fromYaml }}
{{- if not $doc.services }}
{{- fail "files/grpc-services.yaml lists no gRPC services: run scripts/chart/grpc-services.py" }}
{{- end }}
{{- toYaml (pick $doc "services") }}
{{- end }}

{{/*
pfc.grpcRouted: true ("true"/"") when a gRPC route from outside the release to the gRPC roles
is rendered: the gRPC Ingress, or a GRPCRoute of the Gateway API.
*/}}
{{- define "pfc.grpcRouted" -}}
{{- if or .Values.grpcIngress.enabled (and .Values.gatewayApi.enabled .Values.gatewayApi.grpcRoute.enabled) }}true{{ end }}
{{- end }}

{{/*
pfc.redisUrl: PFC_REDIS_URL (the password is passed separately as PFC_REDIS_PASSWORD).
*/}}
{{- define "pfc.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s:%v" (include "pfc.componentFullname" (dict "ctx" . "component" "redis")) .Values.redis.port }}
{{- else }}
{{- required "externalRedis.url is required when redis.enabled is false" .Values.externalRedis.url }}
{{- end }}
{{- end }}

{{/*
pfc.redisSecretName: Secret holding the Redis password ("" when there is none).
*/}}
{{- define "pfc.redisSecretName" -}}
{{- if .Values.redis.enabled }}
{{- if .Values.redis.auth.enabled }}
{{- default (include "pfc.componentFullname" (dict "ctx" . "component" "redis")) .Values.redis.auth.existingSecret }}
{{- end }}
{{- else }}
{{- .Values.externalRedis.existingSecret }}
{{- end }}
{{- end }}

{{/*
pfc.redisSecretKey: key of the Redis password in pfc.redisSecretName.
*/}}
{{- define "pfc.redisSecretKey" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.auth.secretKey }}{{ else }}{{ .Values.externalRedis.secretKey }}{{ end }}
{{- end }}

{{/*
pfc.redisEnv: PFC_REDIS_URL and, when there is a password, PFC_REDIS_PASSWORD_FILE (the
Secret mounted by pfc.redisPasswordVolume/-Mount, redisPasswordFrom=file) or PFC_REDIS_PASSWORD
from a secretKeyRef (redisPasswordFrom=env).
*/}}
{{- define "pfc.redisEnv" -}}
- name: PFC_REDIS_URL
  value: {{ include "pfc.redisUrl" . | quote }}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.cluster }}
- name: PFC_REDIS_CLUSTER
  value: "true"
{{- end }}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.waitReplicas }}
- name: PFC_REDIS_WAIT_REPLICAS
  value: {{ .Values.externalRedis.waitReplicas | quote }}
{{- end }}
{{- with (include "pfc.redisSecretName" .) }}
{{- if eq $.Values.redisPasswordFrom "file" }}
- name: PFC_REDIS_PASSWORD_FILE
  value: /etc/pfc/redis/{{ include "pfc.redisSecretKey" $ }}
{{- else }}
- name: PFC_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ include "pfc.redisSecretKey" $ }}
{{- end }}
{{- end }}
{{- end }}

{{/*
pfc.redisPasswordVolume / pfc.redisPasswordMount: the Redis password Secret as a read-only file
under /etc/pfc/redis (only with a password and redisPasswordFrom=file; empty otherwise).
*/}}
{{- define "pfc.redisPasswordVolume" -}}
{{- if and (include "pfc.redisSecretName" .) (eq .Values.redisPasswordFrom "file") }}
- name: redis-password
  secret:
    secretName: {{ include "pfc.redisSecretName" . }}
    defaultMode: 288
    optional: false
    items:
      - key: {{ include "pfc.redisSecretKey" . }}
        path: {{ include "pfc.redisSecretKey" . }}
{{- end }}
{{- end }}
{{- define "pfc.redisPasswordMount" -}}
{{- if and (include "pfc.redisSecretName" .) (eq .Values.redisPasswordFrom "file") }}
- name: redis-password
  mountPath: /etc/pfc/redis
  readOnly: true
{{- end }}
{{- end }}

{{/*
pfc.redisPassword: the generated Redis password: the live Secret's (lookup, so upgrades keep
it), else a new random one. Memoized in .Values so the Secret and every checksum of one render
agree. Only for the in-chart Redis without existingSecret.
*/}}
{{- define "pfc.redisPassword" -}}
{{- if not (hasKey .Values "__pfcRedisPassword") }}
{{- $name := include "pfc.componentFullname" (dict "ctx" . "component" "redis") }}
{{- $live := lookup "v1" "Secret" .Release.Namespace $name }}
{{- $pw := "" }}
{{- if and $live $live.data (hasKey $live.data .Values.redis.auth.secretKey) }}
{{- $pw = index $live.data .Values.redis.auth.secretKey | b64dec }}
{{- else }}
{{- $pw = randAlphaNum 32 }}
{{- end }}
{{- $_ := set .Values "__pfcRedisPassword" $pw }}
{{- end }}
{{- index .Values "__pfcRedisPassword" }}
{{- end }}

{{/*
pfc.signingKey: the generated Ed25519 signing key (PKCS#8 PEM): the live Secret's, else a new
one; memoized like pfc.redisPassword. Only without auth.signingKey.existingSecret.
*/}}
{{- define "pfc.signingKey" -}}
{{- if not (hasKey .Values "__pfcSigningKey") }}
{{- $name := include "pfc.signingKeySecretName" . }}
{{- $live := lookup "v1" "Secret" .Release.Namespace $name }}
{{- $pem := "" }}
{{- if and $live $live.data (hasKey $live.data .Values.auth.signingKey.secretKey) }}
{{- $pem = index $live.data .Values.auth.signingKey.secretKey | b64dec }}
{{- else }}
{{- $pem = genPrivateKey "ed25519" }}
{{- end }}
{{- $_ := set .Values "__pfcSigningKey" $pem }}
{{- end }}
{{- index .Values "__pfcSigningKey" }}
{{- end }}

{{/*
pfc.secretChecksum: sha256 of the data of a Secret a pod uses, for its checksum/secret
annotation, so pods roll when the Secret changes. A generated Secret: its rendered value. An
existing Secret: its live data (lookup; during `helm template` there is none, so the
checksum is constant and GitOps renders stay stable: roll those pods yourself, or with a
reloader, when you rotate such a Secret). Call with (dict "ctx" $ "what" "redis"|"signingKey").
*/}}
{{- define "pfc.secretChecksum" -}}
{{- $ctx := .ctx }}
{{- if eq .what "redis" }}
{{- $name := include "pfc.redisSecretName" $ctx }}
{{- if not $name }}
{{- "" | sha256sum }}
{{- else if and $ctx.Values.redis.enabled (not $ctx.Values.redis.auth.existingSecret) }}
{{- include "pfc.redisPassword" $ctx | sha256sum }}
{{- else }}
{{- (lookup "v1" "Secret" $ctx.Release.Namespace $name).data | toJson | sha256sum }}
{{- end }}
{{- else }}
{{- if not $ctx.Values.auth.signingKey.existingSecret }}
{{- include "pfc.signingKey" $ctx | sha256sum }}
{{- else }}
{{- (lookup "v1" "Secret" $ctx.Release.Namespace (include "pfc.signingKeySecretName" $ctx)).data | toJson | sha256sum }}
{{- end }}
{{- end }}
{{- end }}

{{/*
pfc.signingKeySecretName: Secret holding auth's Ed25519 private key.
*/}}
{{- define "pfc.signingKeySecretName" -}}
{{- default (printf "%s-signing-key" (include "pfc.componentFullname" (dict "ctx" . "component" "auth"))) .Values.auth.signingKey.existingSecret }}
{{- end }}

{{/*
pfc.probeHandler: the handler of a probe. `native` (default): a gRPC health check (grpc.health.v1,
overall service "") or an HTTP GET. `exec`: the same check run by `pfc probe grpc|http` inside
the container, for runtimes without gRPC probes (podman kube play).
Call with (dict "ctx" $ "component" "jobs" "path" "/healthz"); path only for the gateway.
*/}}
{{- define "pfc.probeHandler" -}}
{{- $c := index .ctx.Values .component -}}
{{- if eq .ctx.Values.probeHandler "exec" -}}
{{- if .path -}}
exec:
  command: ["pfc", "probe", "http", "http://127.0.0.1:{{ $c.port }}{{ .path }}"]
{{- else -}}
exec:
  command: ["pfc", "probe", "grpc", "127.0.0.1:{{ $c.port }}"{{ if .service }}, "--service", "{{ .service }}"{{ end }}]
{{- end -}}
{{- else if .path -}}
httpGet:
  path: {{ .path }}
  port: http
{{- else -}}
grpc:
  port: {{ $c.port }}
  {{- if .service }}
  service: {{ .service }}
  {{- end }}
{{- end -}}
{{- end }}

{{/*
pfc.probes: liveness, readiness and (optional) startup probes of a role, timings from values.
gRPC roles check grpc.health.v1: liveness and startup ask for the service "liveness" (SERVING
while the process runs, whatever Redis does), readiness for "" (follows Redis, NOT_SERVING
during the lame-duck delay). The gateway checks /healthz (liveness, startup) and /readyz/local
(this pod serves; it does not follow the core, so a Redis restart keeps the UI up).
Call with (dict "ctx" $ "component" "jobs").
*/}}
{{- define "pfc.probes" -}}
{{- $c := index .ctx.Values .component -}}
{{- $http := eq .component "gateway" -}}
livenessProbe:
  {{- include "pfc.probeHandler" (merge (dict "path" (ternary "/healthz" "" $http) "service" "liveness") .) | nindent 2 }}
  {{- toYaml $c.livenessProbe | nindent 2 }}
readinessProbe:
  {{- include "pfc.probeHandler" (merge (dict "path" (ternary "/readyz/local" "" $http)) .) | nindent 2 }}
  {{- toYaml $c.readinessProbe | nindent 2 }}
{{- if $c.startupProbe.enabled }}
startupProbe:
  {{- include "pfc.probeHandler" (merge (dict "path" (ternary "/healthz" "" $http) "service" "liveness") .) | nindent 2 }}
  {{- toYaml (omit $c.startupProbe "enabled") | nindent 2 }}
{{- end }}
{{- end }}

{{/*
pfc.podScheduling: nodeSelector, tolerations, affinity (component values override the global
ones) and a soft topology spread for components with several replicas.
Call with (dict "ctx" $ "component" "jobs").
*/}}
{{- define "pfc.podScheduling" -}}
{{- $c := index .ctx.Values .component }}
{{- with ($c.nodeSelector | default .ctx.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($c.tolerations | default .ctx.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($c.affinity | default .ctx.Values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .ctx.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ .ctx.Values.topologySpread.maxSkew }}
    topologyKey: {{ .ctx.Values.topologySpread.topologyKey }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "pfc.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end }}

{{/*
pfc.podMeta: pod template metadata (labels, config checksum so a config change rolls the pods,
annotations). Call with (dict "ctx" $ "component" "jobs").
*/}}
{{- define "pfc.podMeta" -}}
{{- $c := index .ctx.Values .component -}}
metadata:
  labels:
    {{- include "pfc.labels" . | nindent 4 }}
    {{- with .ctx.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print .ctx.Template.BasePath "/configmap.yaml") .ctx | sha256sum }}
    {{- if and (eq .component "jobs") .ctx.Values.jobs.schedules }}
    checksum/schedules: {{ include (print .ctx.Template.BasePath "/jobs-schedules.yaml") .ctx | sha256sum }}
    {{- end }}
    {{- if has .component (list "jobs" "chat") }}
    checksum/secret: {{ include "pfc.secretChecksum" (dict "ctx" .ctx "what" "redis") }}
    {{- else if eq .component "auth" }}
    checksum/secret: {{ include "pfc.secretChecksum" (dict "ctx" .ctx "what" "signingKey") }}
    {{- end }}
    {{- with .ctx.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $c.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
pfc.podSpecCommon: pod-level settings shared by every pfc role.
*/}}
{{- define "pfc.podSpecCommon" -}}
serviceAccountName: {{ include "pfc.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
pfc.containerCommon: container settings shared by every pfc role: the one image, the role as
argument, the shared ConfigMap, security context. Call with (dict "ctx" $ "component" "jobs" "role" "jobs").
*/}}
{{- define "pfc.containerCommon" -}}
image: {{ include "pfc.image" .ctx }}
imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
args: [{{ .role | quote }}]
envFrom:
  - configMapRef:
      name: {{ include "pfc.fullname" .ctx }}-config
securityContext:
  {{- toYaml .ctx.Values.securityContext | nindent 2 }}
resources:
  {{- toYaml (index .ctx.Values .component).resources | nindent 2 }}
{{- end }}

{{/*
pfc.tmpVolume / pfc.tmpMount: a small writable /tmp (the root filesystem is read-only).
*/}}
{{- define "pfc.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
{{- define "pfc.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
pfc.workerKeda: "true" when KEDA scales the workers: worker.keda.enabled is true, or "auto" and
the cluster serves keda.sh/v1alpha1 ScaledObjects (`helm template` needs
`--api-versions keda.sh/v1alpha1/ScaledObject`; Argo CD passes the cluster's). The CPU HPA of
the workers is then not rendered (KEDA creates its own).
*/}}
{{- define "pfc.workerKeda" -}}
{{- $k := .Values.worker.keda.enabled }}
{{- if or (eq (toString $k) "true") (and (eq (toString $k) "auto") (.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject")) }}true{{ end }}
{{- end }}

{{/*
pfc.validate: fail early on contradictory values.
*/}}
{{- define "pfc.validate" -}}
{{- if lt (int .Values.worker.terminationGracePeriodSeconds) 15 }}
{{- fail "worker.terminationGracePeriodSeconds must be at least 15: the worker drains for it minus 10 s (PFC_SHUTDOWN_TIMEOUT)" }}
{{- end }}
{{- range $c := list "jobs" "auth" "chat" "gateway" }}
{{- $grace := int (index $.Values $c).terminationGracePeriodSeconds }}
{{- if le $grace (add (int $.Values.config.shutdownDelaySeconds) 5 | int) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must exceed config.shutdownDelaySeconds (%d) by more than 5 s: the lame-duck delay, then the drain" $c $grace (int $.Values.config.shutdownDelaySeconds)) }}
{{- end }}
{{- end }}
{{- if and (not .Values.redis.enabled) (not .Values.externalRedis.url) }}
{{- fail "redis.enabled=false needs externalRedis.url (redis://host:6379)" }}
{{- end }}
{{- if and .Values.grpcIngress.enabled (not .Values.grpcIngress.tlsSecretName) }}
{{- fail "grpcIngress.enabled needs grpcIngress.tlsSecretName: NGINX serves gRPC (HTTP/2) only over TLS; without TLS use kubectl port-forward" }}
{{- end }}
{{- if and .Values.gatewayApi.enabled (not .Values.gatewayApi.parentRefs) }}
{{- fail "gatewayApi.enabled needs gatewayApi.parentRefs (the Gateway the routes attach to, e.g. [{name: eg, namespace: envoy-gateway-system}])" }}
{{- end }}
{{- if and .Values.ingress.tls.enabled (not .Values.ingress.tls.secretName) }}
{{- fail "ingress.tls.enabled needs ingress.tls.secretName" }}
{{- end }}
{{- end }}

{{/*
pfc.bytes: a Kubernetes memory quantity (`512Mi`, `1G`, `1.5Gi`, `268435456`) in bytes.
*/}}
{{- define "pfc.bytes" -}}
{{- $q := toString . }}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $unit := trimPrefix $num $q }}
{{- $units := dict "" 1 "k" 1000 "K" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if or (not $num) (not (hasKey $units $unit)) }}
{{- fail (printf "cannot read the memory quantity %q (use e.g. 512Mi or 1G)" $q) }}
{{- end }}
{{- mulf (float64 $num) (index $units $unit) | int64 }}
{{- end }}

{{/*
pfc.redisMaxmemory: redis.maxmemory, or redis.maxmemoryPercent of the container's memory limit
in bytes, or "" (no limit) when neither is set.
*/}}
{{- define "pfc.redisMaxmemory" -}}
{{- if .Values.redis.maxmemory }}
{{- .Values.redis.maxmemory }}
{{- else if and .Values.redis.maxmemoryPercent (dig "limits" "memory" "" .Values.redis.resources) }}
{{- $bytes := include "pfc.bytes" .Values.redis.resources.limits.memory | int64 }}
{{- div (mul $bytes (int64 .Values.redis.maxmemoryPercent)) 100 }}
{{- end }}
{{- end }}

{{/*
pfc.redisConf: redis.conf of the in-chart Redis (also hashed into the StatefulSet's pod
annotations, so a config change restarts Redis and nothing else does).
*/}}
{{- define "pfc.redisConf" -}}
# Rendered by the pfc chart. The password (requirepass) is passed on the command line from
# the Secret; Redis hides its arguments from the process title.
port {{ .Values.redis.port }}
bind * -::*
protected-mode no
dir /data
# No RDB snapshots: durability comes from the append-only file when enabled.
save ""
appendonly {{ ternary "yes" "no" .Values.redis.appendonly }}
appendfsync {{ .Values.redis.appendfsync }}
{{- with (include "pfc.redisMaxmemory" .) }}
# A full Redis refuses writes (clients see errors, jobs are not accepted) instead of growing
# into the container's memory limit and being OOM-killed, then replaying its AOF.
maxmemory {{ . }}
# Queues and job records must never be evicted silently: refuse writes instead.
maxmemory-policy noeviction
{{- end }}
{{- with .Values.redis.extraConfig }}
{{ . }}
{{- end }}
{{- end }}

{{/*
The metrics container port of every role (PFC_METRICS_ADDR comes from the shared ConfigMap);
nothing when metrics are off.
*/}}
{{- define "pfc.metricsPort" -}}
{{- if .Values.metrics.enabled -}}
- name: metrics
  containerPort: {{ .Values.metrics.port }}
  protocol: TCP
{{- end }}
{{- end }}

{{/*
pfc.workerKeySecretName: the Secret holding the workers' pre-shared key (access.required).
*/}}
{{- define "pfc.workerKeySecretName" -}}
{{- default (printf "%s-worker-key" (include "pfc.componentFullname" (dict "ctx" . "component" "worker"))) .Values.access.workerKey.existingSecret }}
{{- end }}

{{/*
pfc.workerKey: the generated worker key (`pfc_<16>_<43>` random characters): the live Secret's,
else a new one; memoized like pfc.signingKey. Only without access.workerKey.existingSecret.
*/}}
{{- define "pfc.workerKey" -}}
{{- if not (hasKey .Values "__pfcWorkerKey") }}
{{- $live := lookup "v1" "Secret" .Release.Namespace (include "pfc.workerKeySecretName" .) }}
{{- $key := "" }}
{{- if and $live $live.data (hasKey $live.data .Values.access.workerKey.secretKey) }}
{{- $key = index $live.data .Values.access.workerKey.secretKey | b64dec }}
{{- else }}
{{- $key = printf "pfc_%s_%s" (randAlphaNum 16 | lower) (randAlphaNum 43) }}
{{- end }}
{{- $_ := set .Values "__pfcWorkerKey" $key }}
{{- end }}
{{- index .Values "__pfcWorkerKey" }}
{{- end }}

{{/*
pfc.workerKeyEnv: `name` (PFC_WORKER_KEY on jobs, PFC_TOKEN on workers) from the worker key
Secret, when access control is on. Call with (dict "ctx" $ "name" "PFC_TOKEN").
*/}}
{{- define "pfc.workerKeyEnv" -}}
{{- if .ctx.Values.access.required }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "pfc.workerKeySecretName" .ctx }}
      key: {{ .ctx.Values.access.workerKey.secretKey }}
{{- end }}
{{- end }}
