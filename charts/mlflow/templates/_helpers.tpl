{{/* Names ------------------------------------------------------------------------------------- */}}

{{- define "mlflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mlflow.fullname" -}}
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

{{/* A component's resource name: "<fullname>-<component>", kept within 63 characters. */}}
{{- define "mlflow.componentName" -}}
{{- printf "%s-%s" (include "mlflow.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component -}}
{{- end -}}

{{- define "mlflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "server"). */}}
{{- define "mlflow.labels" -}}
helm.sh/chart: {{ include "mlflow.chart" .root }}
{{ include "mlflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: helm-mlops
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "mlflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mlflow.annotations" -}}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "mlflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mlflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Images ------------------------------------------------------------------------------------ */}}

{{- define "mlflow.imageTag" -}}
{{- if .Values.image.tag -}}
{{- .Values.image.tag -}}
{{- else -}}
{{- printf "v%s%s" .Chart.AppVersion (ternary "-full" "" (eq .Values.image.flavor "full")) -}}
{{- end -}}
{{- end -}}

{{/* The server image, quoted; an empty image.tag means the chart's appVersion (mlflow.imageTag). */}}
{{- define "mlflow.image" -}}
{{- include "mlflow.imageRef" (list "image" .Values.image.repository (include "mlflow.imageTag" .)) -}}
{{- end -}}

{{- define "mlflow.testImage" -}}
{{- $repo := default .Values.image.repository .Values.tests.image.repository -}}
{{- $tag := default (include "mlflow.imageTag" .) .Values.tests.image.tag -}}
{{- include "mlflow.imageRef" (list "tests.image" $repo $tag) -}}
{{- end -}}

{{/* imagePullSecrets of every pod: global.imagePullSecrets (set once by an umbrella chart) first, then
the chart's own imagePullSecrets, each name once. Entries are {name: ...} (global ones may be plain names). */}}
{{- define "mlflow.imagePullSecrets" -}}
{{- $global := dig "imagePullSecrets" (list) (.Values.global | default dict) | default list -}}
{{- $names := list -}}
{{- range concat $global (.Values.imagePullSecrets | default list) -}}
{{- $name := "" -}}
{{- if kindIs "string" . }}{{ $name = . }}{{ else if kindIs "map" . }}{{ $name = dig "name" "" . }}{{ end -}}
{{- if and $name (not (has $name $names)) }}{{ $names = append $names $name }}{{ end -}}
{{- end -}}
{{- with $names -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Store facts --------------------------------------------------------------------------------- */}}

{{- define "mlflow.usesDatabase" -}}
{{- if ne .Values.backendStore.type "sqlite" }}true{{ end -}}
{{- end -}}

{{- define "mlflow.inClusterPostgres" -}}
{{- if and (eq .Values.backendStore.type "postgresql") .Values.backendStore.postgresql.inCluster }}true{{ end -}}
{{- end -}}

{{- define "mlflow.inClusterMinio" -}}
{{- if and (eq .Values.artifactStore.type "minio") .Values.artifactStore.minio.inCluster }}true{{ end -}}
{{- end -}}

{{/* The shared volume holds the SQLite file and/or PVC artifacts. */}}
{{- define "mlflow.usesVolume" -}}
{{- if or (eq .Values.backendStore.type "sqlite") (eq .Values.artifactStore.type "pvc") }}true{{ end -}}
{{- end -}}

{{- define "mlflow.claimName" -}}
{{- default (include "mlflow.componentName" (dict "root" . "component" "data")) .Values.persistence.existingClaim -}}
{{- end -}}

{{/* Only one server pod can run: SQLite, or a ReadWriteOnce claim the chart mounts. */}}
{{- define "mlflow.singleReplica" -}}
{{- if or (eq .Values.backendStore.type "sqlite") (and (include "mlflow.usesVolume" .) (ne .Values.persistence.accessMode "ReadWriteMany")) }}true{{ end -}}
{{- end -}}

{{- define "mlflow.dataDir" -}}/mlflow/data{{- end -}}

{{- define "mlflow.postgresHost" -}}
{{- if .Values.backendStore.postgresql.inCluster -}}
{{- include "mlflow.componentName" (dict "root" . "component" "postgresql") -}}
{{- else -}}
{{- .Values.backendStore.postgresql.host -}}
{{- end -}}
{{- end -}}

{{- define "mlflow.minioEndpoint" -}}
{{- if .Values.artifactStore.minio.inCluster -}}
{{- printf "http://%s:9000" (include "mlflow.componentName" (dict "root" . "component" "minio")) -}}
{{- else -}}
{{- .Values.artifactStore.minio.endpointUrl -}}
{{- end -}}
{{- end -}}

{{- define "mlflow.joinPath" -}}
{{- $parts := list -}}
{{- range . }}{{- if . }}{{- $parts = append $parts (trimAll "/" .) -}}{{- end }}{{- end -}}
{{- join "/" $parts -}}
{{- end -}}

{{/* The artifact destination URI (proxied) or default artifact root (direct). */}}
{{- define "mlflow.artifactDestination" -}}
{{- $a := .Values.artifactStore -}}
{{- if eq $a.type "pvc" -}}
{{- printf "%s/%s" (include "mlflow.dataDir" .) (trimAll "/" $a.pvc.path) -}}
{{- else if eq $a.type "s3" -}}
{{- printf "s3://%s" (include "mlflow.joinPath" (list $a.s3.bucket $a.s3.prefix)) -}}
{{- else if eq $a.type "minio" -}}
{{- printf "s3://%s" (include "mlflow.joinPath" (list $a.minio.bucket $a.minio.prefix)) -}}
{{- else if eq $a.type "gcs" -}}
{{- printf "gs://%s" (include "mlflow.joinPath" (list $a.gcs.bucket $a.gcs.prefix)) -}}
{{- else if eq $a.type "azure" -}}
{{- printf "wasbs://%s@%s.blob.core.windows.net/%s" $a.azure.container $a.azure.storageAccount (trimAll "/" $a.azure.prefix) | trimSuffix "/" -}}
{{- end -}}
{{- end -}}

{{/* Secrets --------------------------------------------------------------------------------------
The chart keeps every credential it owns in one Secret, "<fullname>". Generated values are read back
with lookup so they survive `helm upgrade`. */}}

{{- define "mlflow.secretName" -}}{{ include "mlflow.fullname" . }}{{- end -}}

{{/* A stored value: (dict "root" $ "key" "k" "value" "given-or-empty" "generate" true) */}}
{{- define "mlflow.secretValue" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "mlflow.secretName" .root) -}}
{{- if and $existing (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else if .generate -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* secretKeyRef pairs: each returns "secretName/key". */}}
{{/* (dict "root" $ "secretName" "holder-of-chart-owned-password") */}}
{{- define "mlflow.dbPasswordRef" -}}
{{- $db := index .root.Values.backendStore .root.Values.backendStore.type -}}
{{- if $db.existingSecret -}}
{{- printf "%s/%s" $db.existingSecret $db.existingSecretPasswordKey -}}
{{- else -}}
{{- printf "%s/%s" .secretName "db-password" -}}
{{- end -}}
{{- end -}}

{{- define "mlflow.secretKeyRef" -}}
{{- $parts := splitList "/" . -}}
valueFrom:
  secretKeyRef:
    name: {{ index $parts 0 }}
    key: {{ index $parts 1 }}
{{- end -}}

{{/* Env shared by the server, the migration Job and gc: how the entrypoint builds the store URI. */}}
{{- define "mlflow.dbEnv" -}}
{{- include "mlflow.dbEnvFrom" (dict "root" . "secretName" (include "mlflow.secretName" .)) -}}
{{- end -}}

{{- define "mlflow.dbEnvFrom" -}}
{{- $secretName := .secretName -}}
{{- with .root -}}
{{- $t := .Values.backendStore.type -}}
- name: MLFLOW_HELM_DB_DIALECT
{{- if eq $t "sqlite" }}
  value: sqlite
{{- else }}
  value: {{ printf "%s+%s" $t (index .Values.backendStore $t).driver | quote }}
{{- end }}
{{- if eq $t "sqlite" }}
- name: MLFLOW_HELM_SQLITE_PATH
  value: {{ printf "%s/%s" (include "mlflow.dataDir" .) .Values.backendStore.sqlite.file | quote }}
{{- else }}
{{- $db := index .Values.backendStore $t }}
- name: MLFLOW_HELM_DB_HOST
  value: {{ ternary (include "mlflow.postgresHost" .) $db.host (eq $t "postgresql") | quote }}
- name: MLFLOW_HELM_DB_PORT
  value: {{ $db.port | quote }}
- name: MLFLOW_HELM_DB_NAME
  value: {{ $db.database | quote }}
- name: MLFLOW_HELM_DB_USER
  value: {{ $db.user | quote }}
- name: MLFLOW_HELM_DB_PASSWORD
  {{- include "mlflow.secretKeyRef" (include "mlflow.dbPasswordRef" (dict "root" . "secretName" $secretName)) | nindent 2 }}
{{- if and (eq $t "postgresql") .Values.backendStore.postgresql.sslMode }}
- name: MLFLOW_HELM_DB_SSLMODE
  value: {{ .Values.backendStore.postgresql.sslMode | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Env for the artifact store's credentials and endpoints. */}}
{{- define "mlflow.storageEnv" -}}
{{- $a := .Values.artifactStore -}}
{{- if eq $a.type "s3" }}
{{- if $a.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ $a.s3.region | quote }}
{{- end }}
{{- if $a.s3.endpointUrl }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ $a.s3.endpointUrl | quote }}
{{- end }}
{{- if $a.s3.ignoreTls }}
- name: MLFLOW_S3_IGNORE_TLS
  value: "true"
{{- end }}
{{- if or $a.s3.existingSecret $a.s3.accessKeyId }}
{{- $name := default (include "mlflow.secretName" .) $a.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  {{- include "mlflow.secretKeyRef" (printf "%s/%s" $name (ternary $a.s3.existingSecretAccessKeyIdKey "s3-access-key-id" (not (empty $a.s3.existingSecret)))) | nindent 2 }}
- name: AWS_SECRET_ACCESS_KEY
  {{- include "mlflow.secretKeyRef" (printf "%s/%s" $name (ternary $a.s3.existingSecretSecretAccessKeyKey "s3-secret-access-key" (not (empty $a.s3.existingSecret)))) | nindent 2 }}
{{- end }}
{{- else if eq $a.type "minio" }}
{{- $name := default (include "mlflow.secretName" .) $a.minio.existingSecret }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ include "mlflow.minioEndpoint" . | quote }}
- name: AWS_DEFAULT_REGION
  value: us-east-1
- name: AWS_ACCESS_KEY_ID
  {{- include "mlflow.secretKeyRef" (printf "%s/%s" $name (ternary $a.minio.existingSecretAccessKeyKey "minio-access-key" (not (empty $a.minio.existingSecret)))) | nindent 2 }}
- name: AWS_SECRET_ACCESS_KEY
  {{- include "mlflow.secretKeyRef" (printf "%s/%s" $name (ternary $a.minio.existingSecretSecretKeyKey "minio-secret-key" (not (empty $a.minio.existingSecret)))) | nindent 2 }}
{{- else if and (eq $a.type "gcs") $a.gcs.existingSecret }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: /var/run/secrets/gcs/{{ $a.gcs.existingSecretKey }}
{{- else if eq $a.type "azure" }}
{{- if $a.azure.existingSecretConnectionStringKey }}
- name: AZURE_STORAGE_CONNECTION_STRING
  {{- include "mlflow.secretKeyRef" (printf "%s/%s" $a.azure.existingSecret $a.azure.existingSecretConnectionStringKey) | nindent 2 }}
{{- else }}
- name: AZURE_STORAGE_ACCESS_KEY
  {{- include "mlflow.secretKeyRef" (printf "%s/%s" $a.azure.existingSecret $a.azure.existingSecretAccessKeyKey) | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Env every MLflow container gets: a writable HOME on a read-only root filesystem. */}}
{{- define "mlflow.baseEnv" -}}
- name: HOME
  value: /tmp
- name: PYTHONUNBUFFERED
  value: "1"
{{- end -}}

{{/* Volumes every MLflow pod needs: the entrypoint, /tmp, and storage credentials files. */}}
{{- define "mlflow.baseVolumes" -}}
- name: entrypoint
  configMap:
    name: {{ include "mlflow.fullname" . }}
- name: tmp
  emptyDir: {}
{{- if and (eq .Values.artifactStore.type "gcs") .Values.artifactStore.gcs.existingSecret }}
- name: gcs-credentials
  secret:
    secretName: {{ .Values.artifactStore.gcs.existingSecret }}
{{- end }}
{{- end -}}

{{- define "mlflow.baseVolumeMounts" -}}
- name: entrypoint
  mountPath: /opt/helm-mlops
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if and (eq .Values.artifactStore.type "gcs") .Values.artifactStore.gcs.existingSecret }}
- name: gcs-credentials
  mountPath: /var/run/secrets/gcs
  readOnly: true
{{- end }}
{{- end -}}

{{/* The entrypoint command: python /opt/helm-mlops/entrypoint.py <verb> */}}
{{- define "mlflow.entrypoint" -}}
- python
- /opt/helm-mlops/entrypoint.py
- {{ . }}
{{- end -}}

{{- define "mlflow.podSecurityContext" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- define "mlflow.containerSecurityContext" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end -}}

{{/* Hosts MLflow accepts in the Host header (MLflow 3 security middleware). */}}
{{- define "mlflow.allowedHosts" -}}
{{- $svc := include "mlflow.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts := list "localhost" "127.0.0.1" $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- $hosts = concat $hosts (list (printf "%s:*" $svc) (printf "%s.%s:*" $svc $ns) (printf "%s.%s.svc:*" $svc $ns) (printf "%s.%s.svc.cluster.local:*" $svc $ns) "localhost:*" "127.0.0.1:*") -}}
{{- /* MLflow's own defaults for private addresses, which an explicit list replaces: Prometheus scrapes
     /metrics, and kubelets probe, at the pod IP (Host: 10.x.y.z:5000). Foreign names stay refused. */ -}}
{{- $hosts = concat $hosts (list "10.*" "192.168.*" "fc00:*" "fd00:*") -}}
{{- range $i := untilStep 16 32 1 -}}
{{- $hosts = append $hosts (printf "172.%d.*" $i) -}}
{{- end -}}
{{- if and .Values.ingress.enabled .Values.ingress.host -}}
{{- $hosts = append $hosts .Values.ingress.host -}}
{{- $hosts = concat $hosts (default (list) .Values.ingress.extraHosts) -}}
{{- end -}}
{{- if .Values.httpRoute.enabled -}}
{{- $hosts = concat $hosts .Values.httpRoute.hostnames -}}
{{- end -}}
{{- $hosts = concat $hosts .Values.server.allowedHosts -}}
{{- if has "*" .Values.server.allowedHosts -}}*{{- else -}}{{- join "," (uniq $hosts) -}}{{- end -}}
{{- end -}}

{{- define "mlflow.healthPath" -}}
{{- printf "%s/health" (trimSuffix "/" .Values.server.staticPrefix) -}}
{{- end -}}

{{/* The probes' path: probes.path, else MLflow's health path. */}}
{{- define "mlflow.probePath" -}}
{{- default (include "mlflow.healthPath" .) .Values.probes.path -}}
{{- end -}}

{{/* Checksum of what the pods read, so a config change rolls them. */}}
{{- define "mlflow.configChecksum" -}}
{{- $cm := include (print $.Template.BasePath "/configmap.yaml") . -}}
{{- $sec := include (print $.Template.BasePath "/secret.yaml") . -}}
{{- printf "%s%s" $cm $sec | sha256sum -}}
{{- end -}}

{{/* With basic auth on, MLflow's /metrics answers only admins: the metrics-proxy sidecar scrapes it inside
the pod and serves it on its own port, so Prometheus holds no MLflow credential. */}}
{{- define "mlflow.metricsProxy" -}}
{{- if and .Values.metrics.enabled .Values.auth.basic.enabled }}true{{ end -}}
{{- end -}}

{{/* The admin's credentials as env (for the containers that act as the admin). */}}
{{- define "mlflow.adminEnv" -}}
{{- $b := .Values.auth.basic -}}
- name: MLFLOW_TRACKING_USERNAME
  {{- include "mlflow.secretKeyRef" (ternary (printf "%s/%s" $b.existingSecret $b.existingSecretUsernameKey) (printf "%s/admin-username" (include "mlflow.secretName" .)) (not (empty $b.existingSecret))) | nindent 2 }}
- name: MLFLOW_TRACKING_PASSWORD
  {{- include "mlflow.secretKeyRef" (ternary (printf "%s/%s" $b.existingSecret $b.existingSecretPasswordKey) (printf "%s/admin-password" (include "mlflow.secretName" .)) (not (empty $b.existingSecret))) | nindent 2 }}
{{- end -}}

{{/* Basic-auth env: the admin (read by MLflow itself) and the Flask secret shared by all workers. */}}
{{- define "mlflow.authEnv" -}}
{{- $b := .Values.auth.basic -}}
{{- if $b.enabled }}
- name: MLFLOW_HELM_AUTH
  value: basic
- name: MLFLOW_HELM_AUTH_DEFAULT_PERMISSION
  value: {{ $b.defaultPermission | quote }}
- name: MLFLOW_AUTH_ADMIN_USERNAME
  {{- include "mlflow.secretKeyRef" (ternary (printf "%s/%s" $b.existingSecret $b.existingSecretUsernameKey) (printf "%s/admin-username" (include "mlflow.secretName" .)) (not (empty $b.existingSecret))) | nindent 2 }}
- name: MLFLOW_AUTH_ADMIN_PASSWORD
  {{- include "mlflow.secretKeyRef" (ternary (printf "%s/%s" $b.existingSecret $b.existingSecretPasswordKey) (printf "%s/admin-password" (include "mlflow.secretName" .)) (not (empty $b.existingSecret))) | nindent 2 }}
- name: MLFLOW_FLASK_SERVER_SECRET_KEY
  {{- include "mlflow.secretKeyRef" (ternary (printf "%s/%s" $b.existingSecret $b.existingSecretFlaskKeyKey) (printf "%s/flask-secret-key" (include "mlflow.secretName" .)) (and (not (empty $b.existingSecret)) (not (empty $b.existingSecretFlaskKeyKey)))) | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Arguments of `mlflow server` (the entrypoint adds --backend-store-uri). */}}
{{- define "mlflow.serverArgs" -}}
- --host={{ .Values.server.host }}
- --port={{ .Values.server.port }}
- --workers={{ .Values.server.workers }}
{{- with .Values.server.staticPrefix }}
- --static-prefix={{ . }}
{{- end }}
- --allowed-hosts={{ include "mlflow.allowedHosts" . }}
{{- with .Values.server.corsAllowedOrigins }}
- --cors-allowed-origins={{ join "," . }}
{{- end }}
{{- if .Values.artifactStore.proxied }}
- --serve-artifacts
- --artifacts-destination={{ include "mlflow.artifactDestination" . }}
{{- else }}
- --no-serve-artifacts
- --default-artifact-root={{ include "mlflow.artifactDestination" . }}
{{- end }}
{{- if .Values.metrics.enabled }}
- --expose-prometheus=/tmp/prometheus
{{- end }}
{{- if .Values.auth.basic.enabled }}
- --app-name=basic-auth
{{- else if .Values.auth.appName }}
- --app-name={{ .Values.auth.appName }}
{{- end }}
{{- range .Values.server.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The migration Job: (dict "root" $ "name" "migrate" "hook" "pre-install,..." "hookScoped" bool).
hookScoped: read the entrypoint and a chart-owned password from hook-scoped objects, because the
release's ConfigMap and Secret do not exist yet at pre-install. */}}
{{/* The migration Job. As a hook it has a fixed name (helm deletes it before the next run); as a plain
Job of the release (in-cluster PostgreSQL) its name ends in a hash of its spec and of the entrypoint, so
an upgrade that changes it creates a new Job (a Job's template is immutable) and one that does not leaves
the finished Job alone; `helm template` (Argo CD, Flux) renders the same Job as `helm upgrade`. */}}
{{- define "mlflow.migrationJob" -}}
{{- if .hook -}}
{{- include "mlflow.migrationJobBody" (merge (dict "jobName" (include "mlflow.componentName" (dict "root" .root "component" .name))) .) -}}
{{- else -}}
{{- $body := include "mlflow.migrationJobBody" (merge (dict "jobName" "NAME") .) -}}
{{- $hash := print $body (.root.Files.Get "files/entrypoint.py") | sha256sum | trunc 8 -}}
{{- $name := printf "%s-%s" (include "mlflow.componentName" (dict "root" .root "component" .name) | trunc 54 | trimSuffix "-") $hash -}}
{{- include "mlflow.migrationJobBody" (merge (dict "jobName" $name) .) -}}
{{- end -}}
{{- end -}}

{{- define "mlflow.migrationJobBody" -}}
{{- $hookName := include "mlflow.componentName" (dict "root" .root "component" "migration") -}}
{{- $secretName := ternary $hookName (include "mlflow.secretName" .root) .hookScoped -}}
{{- $configMap := ternary $hookName (include "mlflow.fullname" .root) .hookScoped -}}
{{- with .root }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $.jobName }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "mlflow.labels" (dict "root" . "component" "migration") | nindent 4 }}
  {{- if $.hook }}
  annotations:
    helm.sh/hook: {{ $.hook }}
    helm.sh/hook-weight: "0"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
  {{- end }}
spec:
  backoffLimit: {{ .Values.migration.backoffLimit }}
  activeDeadlineSeconds: {{ add .Values.migration.waitTimeoutSeconds 1800 }}
  template:
    metadata:
      labels:
        {{- include "mlflow.labels" (dict "root" . "component" "migration") | nindent 8 }}
    spec:
      restartPolicy: Never
      {{- if not $.hookScoped }}
      serviceAccountName: {{ include "mlflow.serviceAccountName" . }}
      {{- else if not .Values.serviceAccount.create }}
      {{- /* An existing account the user named; the chart's own does not exist yet at pre-install. */}}
      serviceAccountName: {{ include "mlflow.serviceAccountName" . }}
      {{- end }}
      automountServiceAccountToken: false
      {{- with include "mlflow.imagePullSecrets" . }}{{ . | nindent 6 }}{{ end }}
      {{- include "mlflow.podSecurityContext" . | nindent 6 }}
      containers:
        - name: migrate
          image: {{ include "mlflow.image" . }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          command:
            {{- include "mlflow.entrypoint" "upgrade" | nindent 12 }}
          env:
            {{- include "mlflow.baseEnv" . | nindent 12 }}
            {{- include "mlflow.dbEnvFrom" (dict "root" . "secretName" $secretName) | nindent 12 }}
            - name: MLFLOW_HELM_DB_WAIT_SECONDS
              value: {{ .Values.migration.waitTimeoutSeconds | quote }}
          {{- include "mlflow.containerSecurityContext" . | nindent 10 }}
          resources:
            {{- toYaml .Values.migration.resources | nindent 12 }}
          volumeMounts:
            - name: entrypoint
              mountPath: /opt/helm-mlops
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: entrypoint
          configMap:
            name: {{ $configMap }}
        - name: tmp
          emptyDir: {}
{{- end }}
{{- end -}}

{{/* Paths routed from outside. With the UI off only the REST API, health, metrics and MLflow 3's OTLP
trace ingestion (`/v1/traces`, under the static prefix) are routed. */}}
{{- define "mlflow.routedPaths" -}}
{{- $base := trimSuffix "/" (default .path .root.Values.server.staticPrefix) -}}
{{- if .root.Values.ui.enabled -}}
{{- list (default "/" .path) | toJson -}}
{{- else -}}
{{- list (printf "%s/api" $base) (printf "%s/ajax-api" $base) (printf "%s/health" $base) (printf "%s/metrics" $base) (printf "%s/v1/traces" $base) | toJson -}}
{{- end -}}
{{- end -}}

{{/* Exposure findings, one per line: warned in NOTES, refused under global.strictSecurity. */}}
{{- define "mlflow.exposure" -}}
{{- $v := .Values -}}
{{- $auth := or $v.auth.basic.enabled $v.auth.appName -}}
{{- $exposed := or $v.ingress.enabled $v.httpRoute.enabled -}}
{{- if and $v.ingress.enabled (not $v.ingress.tls.enabled) }}
ingress.tls.enabled=false: credentials, runs and models cross the network in clear text; enable TLS.
{{- end }}
{{- if and $exposed (not $auth) }}
MLflow is exposed (ingress/httpRoute) without authentication: anyone who reaches the host can read and change runs and registered models (and, with proxied artifacts, their files). Enable auth.basic (or auth.appName).
{{- else if not $auth }}
auth is off: any pod that reaches the Service can read and change runs and models{{ if not $v.networkPolicy.enabled }}, and networkPolicy.enabled=false lets every pod of the cluster reach it{{ end }}. Enable auth.basic for shared clusters.
{{- end }}
{{- end -}}

{{- define "mlflow.strictSecurity" -}}
{{- if (dig "strictSecurity" false (.Values.global | default dict)) }}true{{ end -}}
{{- end -}}

{{/* The PodDisruptionBudget's one budget line. `maxUnavailable` when set; else `minAvailable`, unless it
would leave no pod evictable at the lowest replica count (autoscaling.minReplicas with an HPA, else
replicaCount): with a single pod that is `maxUnavailable: 1` (a budget of minAvailable 1 against one pod
blocks every node drain), with several pods the values are refused ("mlflow.pdbError"). */}}
{{- define "mlflow.pdbLowestReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.minReplicas }}{{ else }}{{ int .Values.replicaCount }}{{ end -}}
{{- end -}}

{{/* How many pods minAvailable asks for at the lowest replica count (a percentage rounds up, as the
disruption controller does). */}}
{{- define "mlflow.pdbRequired" -}}
{{- $min := toString .Values.podDisruptionBudget.minAvailable -}}
{{- $lowest := int (include "mlflow.pdbLowestReplicas" .) -}}
{{- if hasSuffix "%" $min -}}
{{- div (add (mul (int (trimSuffix "%" $min)) $lowest) 99) 100 -}}
{{- else -}}
{{- int $min -}}
{{- end -}}
{{- end -}}

{{- define "mlflow.pdbBudget" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if not (kindIs "invalid" $pdb.maxUnavailable) -}}
maxUnavailable: {{ $pdb.maxUnavailable }}
{{- else if ge (int (include "mlflow.pdbRequired" .)) (int (include "mlflow.pdbLowestReplicas" .)) -}}
maxUnavailable: 1
{{- else -}}
minAvailable: {{ $pdb.minAvailable }}
{{- end -}}
{{- end -}}

{{/* Non-empty when the chart replaced minAvailable by maxUnavailable: 1 (said in NOTES). */}}
{{- define "mlflow.pdbAdapted" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.maxUnavailable) (hasPrefix "maxUnavailable" (include "mlflow.pdbBudget" .)) -}}
podDisruptionBudget.minAvailable={{ $pdb.minAvailable }} would block every node drain with {{ include "mlflow.pdbLowestReplicas" . }} pod: the PodDisruptionBudget uses maxUnavailable: 1 instead. Run 2+ replicas (replicaCount, or autoscaling.minReplicas) to keep a pod serving during drains.
{{- end -}}
{{- end -}}

{{/* Non-empty when minAvailable leaves no pod evictable with several pods: refused by validation. */}}
{{- define "mlflow.pdbError" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- $lowest := int (include "mlflow.pdbLowestReplicas" .) -}}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.maxUnavailable) (gt $lowest 1) (ge (int (include "mlflow.pdbRequired" .)) $lowest) -}}
podDisruptionBudget.minAvailable={{ $pdb.minAvailable }} with {{ $lowest }} pods ({{ ternary "autoscaling.minReplicas" "replicaCount" .Values.autoscaling.enabled }}) leaves no pod evictable, so node drains block forever. Set podDisruptionBudget.minAvailable to at most {{ sub $lowest 1 }}, or set podDisruptionBudget.maxUnavailable (e.g. 1).
{{- end -}}
{{- end -}}

{{/* Non-empty when the chart's Secret holds the password of data that outlives an uninstall (the
in-cluster PostgreSQL's or MinIO's StatefulSet claims): the Secret is kept too. */}}
{{- define "mlflow.keepsSecret" -}}
{{- $a := .Values.artifactStore -}}
{{- if or (and (include "mlflow.inClusterPostgres" .) (not .Values.backendStore.postgresql.existingSecret)) (and (eq $a.type "minio") $a.minio.inCluster (not $a.minio.existingSecret)) -}}
true
{{- end -}}
{{- end -}}

{{/* Storage changes Kubernetes refuses on an existing release, one message per line, found with `lookup`
(empty under `helm template`): a claim's access mode and StorageClass never change and it never shrinks;
a StatefulSet's volumeClaimTemplates (the in-cluster PostgreSQL's and MinIO's volumes) never change. */}}
{{- define "mlflow.storageChangeErrors" -}}
{{- $ns := .Release.Namespace -}}
{{- $p := .Values.persistence -}}
{{- if and (include "mlflow.usesVolume" .) (not $p.existingClaim) -}}
{{- $name := include "mlflow.claimName" . -}}
{{- with lookup "v1" "PersistentVolumeClaim" $ns $name -}}
{{- $mode := first (default (list "") .spec.accessModes) -}}
{{- if ne $mode $p.accessMode }}
persistence.accessMode={{ $p.accessMode }}: the claim {{ $name }} exists with {{ $mode }}, and a claim's access mode cannot change. Keep persistence.accessMode={{ $mode }}, or copy the data to a new claim with the access mode you need and set persistence.existingClaim.
{{- end -}}
{{- $class := default "" .spec.storageClassName -}}
{{- if and $p.storageClass (ne $p.storageClass $class) }}
persistence.storageClass={{ $p.storageClass }}: the claim {{ $name }} exists with StorageClass {{ $class | quote }}, and a claim's StorageClass cannot change. Keep persistence.storageClass={{ $class }}, or copy the data to a new claim and set persistence.existingClaim.
{{- end -}}
{{- $old := .spec.resources.requests.storage -}}
{{- if lt (float64 (include "mlflow.quantity" $p.size)) (float64 (include "mlflow.quantity" $old)) }}
persistence.size={{ $p.size }}: the claim {{ $name }} has {{ $old }}, and a claim cannot shrink. Keep persistence.size={{ $old }} (or larger, if its StorageClass allows volume expansion).
{{- end -}}
{{- end -}}
{{- end -}}
{{- $sets := list -}}
{{- if include "mlflow.inClusterPostgres" . -}}
{{- $sets = append $sets (list "postgresql" "postgresql.persistence" .Values.postgresql.persistence) -}}
{{- end -}}
{{- if include "mlflow.inClusterMinio" . -}}
{{- $sets = append $sets (list "minio" "artifactStore.minio.persistence" .Values.artifactStore.minio.persistence) -}}
{{- end -}}
{{- range $set := $sets -}}
{{- $name := include "mlflow.componentName" (dict "root" $ "component" (index $set 0)) -}}
{{- $key := index $set 1 -}}
{{- $want := index $set 2 -}}
{{- with lookup "apps/v1" "StatefulSet" $ns $name -}}
{{- $tpl := first (default (list dict) .spec.volumeClaimTemplates) -}}
{{- $old := $tpl.spec.resources.requests.storage -}}
{{- $oldClass := default "" $tpl.spec.storageClassName -}}
{{- $fix := printf "Kubernetes forbids changing a StatefulSet's volumeClaimTemplates. To grow the volume: kubectl -n %s patch pvc data-%s-0 -p '{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"%s\"}}}}' (its StorageClass must allow expansion), then kubectl -n %s delete statefulset %s --cascade=orphan (the pod and its data stay), then upgrade again." $ns $name (toString $want.size) $ns $name -}}
{{- if ne (float64 (include "mlflow.quantity" $want.size)) (float64 (include "mlflow.quantity" $old)) }}
{{ $key }}.size={{ $want.size }}: the StatefulSet {{ $name }} was created with {{ $old }}. Keep {{ $key }}.size={{ $old }}, or: {{ $fix }}
{{- end -}}
{{- if ne (default "" $want.storageClass) $oldClass }}
{{ $key }}.storageClass={{ $want.storageClass | quote }}: the StatefulSet {{ $name }} was created with {{ $oldClass | quote }}, and Kubernetes forbids changing a StatefulSet's volumeClaimTemplates or a claim's StorageClass. Keep {{ $key }}.storageClass={{ $oldClass | quote }}.
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Checks -------------------------------------------------------------------------------------- */}}
{{/* The same in every helm-mlops chart but for the name prefix (tests/test_chart_checks.py). */}}

{{/* A Kubernetes quantity ("500m", "2Gi", "1.5", "1e3", 4) as a float64, printed as text; empty when it
is not a quantity (the schema reports those). Decimal suffixes and exponents go into the number's text
("500m" parses as "500e-3"), so equal quantities written differently ("0.5", "500m") give the same
float; binary suffixes multiply by 1024 once per step (mulf is exact for it; 2^60 in one go is not). */}}
{{- define "mlflow.quantity" -}}
{{- $q := toString . | trim -}}
{{- if regexMatch "^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$" $q -}}
{{- $num := regexReplaceAll "^([+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)).*$" $q "${1}" -}}
{{- $suffix := trimPrefix $num $q -}}
{{- $binary := dict "Ki" 1 "Mi" 2 "Gi" 3 "Ti" 4 "Pi" 5 "Ei" 6 -}}
{{- $decimal := dict "n" "-9" "u" "-6" "m" "-3" "" "0" "k" "3" "M" "6" "G" "9" "T" "12" "P" "15" "E" "18" -}}
{{- if hasKey $binary $suffix -}}
{{- $x := float64 $num -}}
{{- range until (get $binary $suffix) }}{{ $x = mulf $x 1024 }}{{ end -}}
{{- $x -}}
{{- else if hasKey $decimal $suffix -}}
{{- float64 (printf "%se%s" $num (get $decimal $suffix)) -}}
{{- else -}}
{{- float64 (print $num $suffix) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* One line per resource whose request is above its limit (Kubernetes refuses the pod). Call with
(list "value.path" $resources). */}}
{{- define "mlflow.resourceErrors" -}}
{{- $path := index . 0 -}}
{{- $res := index . 1 | default dict -}}
{{- $limits := get $res "limits" | default dict -}}
{{- range $name, $request := get $res "requests" | default dict -}}
{{- if hasKey $limits $name -}}
{{- $limit := index $limits $name -}}
{{- $r := include "mlflow.quantity" $request -}}
{{- $l := include "mlflow.quantity" $limit -}}
{{- if and $r $l (gt (float64 $r) (float64 $l)) }}
{{ printf "%s.requests.%s (%v) is above %s.limits.%s (%v): Kubernetes refuses a request larger than its limit. Lower the request or raise the limit." $path $name $request $path $name $limit }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Why a CronJob schedule is one Kubernetes refuses, or nothing. Kubernetes parses it with robfig/cron
v3 (ParseStandard: five fields or a descriptor) and refuses TZ= / CRON_TZ= in it. Call with
(list "value.path" schedule "time zone value path or empty"). */}}
{{- define "mlflow.cronError" -}}
{{- $path := index . 0 -}}
{{- $s := index . 1 | toString | trim -}}
{{- $tzPath := index . 2 -}}
{{- $why := "" -}}
{{- if contains "TZ" $s -}}
{{- $why = ternary (printf "Kubernetes refuses TZ= and CRON_TZ= in the schedule: drop the prefix and set %s" $tzPath) "Kubernetes refuses TZ= and CRON_TZ= in the schedule: drop the prefix (the schedule runs in the controller's time zone)" (ne $tzPath "") -}}
{{- else if hasPrefix "@" $s -}}
{{- if not (or (has $s (list "@yearly" "@annually" "@monthly" "@weekly" "@daily" "@midnight" "@hourly")) (regexMatch "^@every [+-]?(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$" $s)) -}}
{{- $why = "not a descriptor Kubernetes knows (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>)" -}}
{{- end -}}
{{- else -}}
{{- $fields := regexSplit "\\s+" $s -1 -}}
{{- if ne (len $fields) 5 -}}
{{- $why = printf "%d fields instead of 5 (minute hour day-of-month month day-of-week)" (len (compact $fields)) -}}
{{- else -}}
{{- $months := dict "jan" 1 "feb" 2 "mar" 3 "apr" 4 "may" 5 "jun" 6 "jul" 7 "aug" 8 "sep" 9 "oct" 10 "nov" 11 "dec" 12 -}}
{{- $days := dict "sun" 0 "mon" 1 "tue" 2 "wed" 3 "thu" 4 "fri" 5 "sat" 6 -}}
{{- $specs := list (list "minute" 0 59 (dict)) (list "hour" 0 23 (dict)) (list "day of month" 1 31 (dict)) (list "month" 1 12 $months) (list "day of week" 0 6 $days) -}}
{{- range $i, $field := $fields -}}
{{- $spec := index $specs $i -}}
{{- $name := index $spec 0 -}}{{- $min := index $spec 1 -}}{{- $max := index $spec 2 -}}{{- $names := index $spec 3 -}}
{{- range $part := splitList "," $field -}}
{{- if or $why (not $part) }}{{ continue }}{{ end -}}{{/* robfig skips empty list items */}}
{{- $rangeStep := splitList "/" $part -}}
{{- $bounds := splitList "-" (first $rangeStep) -}}
{{- $start := -1 -}}{{- $end := -1 -}}
{{- if gt (len $rangeStep) 2 -}}
{{- $why = printf "the %s field %q has more than one /" $name $part -}}
{{- else if gt (len $bounds) 2 -}}
{{- $why = printf "the %s field %q has more than one -" $name $part -}}
{{- else if and (eq (len $rangeStep) 2) (not (regexMatch "^\\+?[0-9]+$" (last $rangeStep))) -}}
{{- $why = printf "the step of the %s field %q is not a number" $name $part -}}
{{- else if and (eq (len $rangeStep) 2) (eq (include "mlflow.cronInt" (last $rangeStep)) "0") -}}
{{- $why = printf "the step of the %s field %q is 0" $name $part -}}
{{- else if has (first $bounds) (list "*" "?") -}}
{{- $start = $min -}}{{- $end = $max -}}
{{- else -}}
{{- range $j, $b := $bounds -}}
{{- $n := -1 -}}
{{- if hasKey $names (lower $b) -}}{{- $n = get $names (lower $b) -}}
{{- else if regexMatch "^\\+?[0-9]+$" $b -}}{{- $n = atoi (include "mlflow.cronInt" $b) -}}
{{- end -}}
{{- if eq $j 0 }}{{ $start = $n }}{{ $end = $n }}{{ else }}{{ $end = $n }}{{ end -}}
{{- if and (lt (int $n) 0) (not $why) -}}
{{- $why = printf "the %s field %q: %q is not a number%s" $name $field $b (ternary "" " or a name" (empty $names)) -}}
{{- end -}}
{{- end -}}
{{- if and (not $why) (eq (len $rangeStep) 2) (eq (len $bounds) 1) }}{{ $end = $max }}{{ end -}}
{{- end -}}
{{- if $why -}}
{{- else if lt (int $start) (int $min) -}}
{{- $why = printf "the %s field %q starts below %d" $name $part (int $min) -}}
{{- else if gt (int $end) (int $max) -}}
{{- $why = printf "the %s field %q goes above %d" $name $part (int $max) -}}
{{- else if gt (int $start) (int $end) -}}
{{- $why = printf "the %s field %q is a range that ends before it starts" $name $part -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $why -}}
{{- printf "%s (%q) is not a schedule Kubernetes accepts: %s. Write five fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-6 or SUN-SAT; each *, a number, a range a-b or a list a,b, with an optional /step), or @hourly, @daily, @weekly, @monthly, @yearly." $path $s $why -}}
{{- end -}}
{{- end -}}

{{/* A cron number in base 10 as robfig/cron reads it ("08" is 8; atoi alone would read octal), capped
at 99999 so that a huge number stays out of range instead of overflowing. */}}
{{- define "mlflow.cronInt" -}}
{{- $d := regexReplaceAll "^\\+?0*([0-9])" (toString .) "${1}" -}}
{{- if gt (len $d) 5 }}99999{{ else }}{{ atoi $d }}{{ end -}}
{{- end -}}

{{/* A container image "repository:tag", quoted; refuses an empty repository or tag, naming the values.
Call with (list "image.path" repository tag). */}}
{{- define "mlflow.imageRef" -}}
{{- $path := index . 0 -}}{{- $repo := index . 1 | toString | trim -}}{{- $tag := index . 2 | toString | trim -}}
{{- if not $repo -}}
{{- fail (printf "\n\n%s.repository is empty: set the image repository, e.g. --set %s.repository=python." $path $path) -}}
{{- end -}}
{{- if not $tag -}}
{{- fail (printf "\n\n%s.tag is empty (image %s has no tag): set it, e.g. --set %s.tag=3.11-slim; an image with no tag would pull whatever \"latest\" is today." $path $repo $path) -}}
{{- end -}}
{{- if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" $repo $tag | quote -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag | quote -}}
{{- end -}}
{{- end -}}
