{{/* Cross-field rules. Each message names the value to change and how. Types, enums and unknown keys
are rejected earlier by values.schema.json. */}}
{{- define "mlflow.validate" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- $single := include "mlflow.singleReplica" . -}}
{{- if and $single (gt (int $v.replicaCount) 1) -}}
{{- $errors = append $errors (printf "replicaCount=%d: backendStore.type=%s with a %s volume allows one server pod. Set replicaCount=1, or use backendStore.type=postgresql|mysql with an object artifact store (or, on a new install, persistence.accessMode=ReadWriteMany: an existing claim's access mode cannot change)." (int $v.replicaCount) $v.backendStore.type $v.persistence.accessMode) -}}
{{- end -}}
{{- if and $single $v.autoscaling.enabled -}}
{{- $errors = append $errors (printf "autoscaling.enabled=true needs several server pods, but backendStore.type=%s with a %s volume allows one. Use backendStore.type=postgresql|mysql with an object artifact store (or, on a new install, persistence.accessMode=ReadWriteMany: an existing claim's access mode cannot change), or set autoscaling.enabled=false." $v.backendStore.type $v.persistence.accessMode) -}}
{{- end -}}
{{- if and $v.autoscaling.enabled (lt (int $v.autoscaling.maxReplicas) (int $v.autoscaling.minReplicas)) -}}
{{- $errors = append $errors "autoscaling.maxReplicas must be >= autoscaling.minReplicas." -}}
{{- end -}}
{{- if and $v.auth.basic.enabled $v.auth.appName -}}
{{- $errors = append $errors (printf "auth: two auth modes at once (auth.basic.enabled=true and auth.appName=%s). Keep one: unset auth.appName, or set auth.basic.enabled=false." $v.auth.appName) -}}
{{- end -}}
{{- if eq $v.backendStore.type "postgresql" -}}
{{- $pg := $v.backendStore.postgresql -}}
{{- if and (not $pg.inCluster) (not $pg.host) -}}
{{- $errors = append $errors "backendStore.postgresql.host is required for an external PostgreSQL (or set backendStore.postgresql.inCluster=true)." -}}
{{- end -}}
{{- if and (not $pg.inCluster) (not $pg.password) (not $pg.existingSecret) -}}
{{- $errors = append $errors "backendStore.postgresql: set existingSecret (recommended) or password for the external PostgreSQL." -}}
{{- end -}}
{{- end -}}
{{- if eq $v.backendStore.type "mysql" -}}
{{- $my := $v.backendStore.mysql -}}
{{- if not $my.host -}}
{{- $errors = append $errors "backendStore.mysql.host is required when backendStore.type=mysql." -}}
{{- end -}}
{{- if and (not $my.password) (not $my.existingSecret) -}}
{{- $errors = append $errors "backendStore.mysql: set existingSecret (recommended) or password." -}}
{{- end -}}
{{- end -}}
{{- $a := $v.artifactStore -}}
{{- if and (eq $a.type "s3") (not $a.s3.bucket) -}}
{{- $errors = append $errors "artifactStore.s3.bucket is required when artifactStore.type=s3." -}}
{{- end -}}
{{- if and (eq $a.type "s3") (not $a.s3.existingSecret) (ne (empty $a.s3.accessKeyId) (empty $a.s3.secretAccessKey)) -}}
{{- $errors = append $errors "artifactStore.s3: set both accessKeyId and secretAccessKey, or neither (existingSecret or workload identity)." -}}
{{- end -}}
{{- if and (eq $a.type "minio") (not $a.minio.inCluster) -}}
{{- if not $a.minio.endpointUrl -}}
{{- $errors = append $errors "artifactStore.minio.endpointUrl is required for an external MinIO (or set artifactStore.minio.inCluster=true)." -}}
{{- end -}}
{{- if and (not $a.minio.existingSecret) (or (not $a.minio.accessKey) (not $a.minio.secretKey)) -}}
{{- $errors = append $errors "artifactStore.minio: an external MinIO needs existingSecret, or accessKey and secretKey." -}}
{{- end -}}
{{- end -}}
{{- if and (eq $a.type "gcs") (not $a.gcs.bucket) -}}
{{- $errors = append $errors "artifactStore.gcs.bucket is required when artifactStore.type=gcs." -}}
{{- end -}}
{{- if eq $a.type "azure" -}}
{{- if or (not $a.azure.storageAccount) (not $a.azure.container) -}}
{{- $errors = append $errors "artifactStore.azure.storageAccount and artifactStore.azure.container are required when artifactStore.type=azure." -}}
{{- end -}}
{{- if not $a.azure.existingSecret -}}
{{- $errors = append $errors "artifactStore.azure.existingSecret is required: a Secret with a connection string or an access key." -}}
{{- end -}}
{{- if and (not $a.azure.existingSecretConnectionStringKey) (not $a.azure.existingSecretAccessKeyKey) -}}
{{- $errors = append $errors "artifactStore.azure: set existingSecretConnectionStringKey or existingSecretAccessKeyKey." -}}
{{- end -}}
{{- end -}}
{{- if and (include "mlflow.inClusterMinio" .) (not $a.proxied) -}}
{{- $errors = append $errors "artifactStore.proxied=false with the in-cluster MinIO (artifactStore.minio.inCluster=true): clients would get s3:// artifact URIs for a MinIO that only this namespace can reach, with credentials only the server holds. Keep artifactStore.proxied=true, or use a MinIO your clients can reach (artifactStore.minio.inCluster=false with artifactStore.minio.endpointUrl)." -}}
{{- end -}}
{{- if and (eq $a.type "pvc") (not $a.proxied) -}}
{{- $errors = append $errors "artifactStore.proxied=false with artifactStore.type=pvc: clients cannot write to the server's volume. Keep artifactStore.proxied=true or use an object store." -}}
{{- end -}}
{{- if and $v.ingress.enabled (not $v.ingress.host) -}}
{{- $errors = append $errors "ingress.host is required when ingress.enabled=true." -}}
{{- end -}}
{{- if and $v.httpRoute.enabled (not $v.httpRoute.parentRefs) -}}
{{- $errors = append $errors "httpRoute.parentRefs needs at least one Gateway when httpRoute.enabled=true." -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.enabled) -}}
{{- $errors = append $errors "metrics.serviceMonitor.enabled=true needs metrics.enabled=true (the server must expose /metrics)." -}}
{{- end -}}
{{- if and $v.gc.enabled $single -}}
{{- $errors = append $errors (printf "gc.enabled=true: the gc CronJob cannot share the server's %s volume. Use backendStore.type=postgresql|mysql with an object artifact store, or (on a new install: an existing claim's access mode cannot change) persistence.accessMode=ReadWriteMany." $v.persistence.accessMode) -}}
{{- end -}}
{{- $needsDrivers := or (ne $v.backendStore.type "sqlite") (has $a.type (list "s3" "minio" "gcs" "azure")) -}}
{{- if and (not $v.image.tag) (eq $v.image.flavor "full") (semverCompare "<3.9.0-0" $.Chart.AppVersion) (not $v.image.driversIncluded) -}}
{{- $errors = append $errors (printf "image.flavor=full: the -full image exists from MLflow 3.9.0, this chart's appVersion is %s. Set image.tag to an image with the drivers and image.driversIncluded=true." $.Chart.AppVersion) -}}
{{- end -}}
{{- if and $v.image.tag (not $v.image.driversIncluded) $needsDrivers (not (regexMatch "-full$" $v.image.tag)) -}}
{{- $errors = append $errors (printf "image.tag=%s: backendStore.type=%s / artifactStore.type=%s need database drivers and cloud SDKs (psycopg2, pymysql, boto3, ...) that only the -full MLflow image has. Use a v<version>-full tag (MLflow >= 3.9.0), or an image of your own with them and image.driversIncluded=true." $v.image.tag $v.backendStore.type $a.type) -}}
{{- end -}}
{{- if and (not $v.image.tag) (eq $v.image.flavor "plain") $needsDrivers (not $v.image.driversIncluded) -}}
{{- $errors = append $errors (printf "image.flavor=plain lacks the drivers and SDKs that backendStore.type=%s / artifactStore.type=%s need; a pod would fail on its first database call or artifact upload. Use image.flavor=full." $v.backendStore.type $a.type) -}}
{{- end -}}
{{- if include "mlflow.strictSecurity" . -}}
{{- range $finding := splitList "\n" (include "mlflow.exposure" . | trim) -}}
{{- if $finding -}}
{{- $errors = append $errors (printf "global.strictSecurity: %s" $finding) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $line := splitList "\n" (include "mlflow.resourceErrors" (list "resources" $v.resources)) -}}
{{- if $line }}{{ $errors = append $errors $line }}{{ end -}}
{{- end -}}
{{- range $line := splitList "\n" (include "mlflow.resourceErrors" (list "migration.resources" $v.migration.resources)) -}}
{{- if $line }}{{ $errors = append $errors $line }}{{ end -}}
{{- end -}}
{{- range $line := splitList "\n" (include "mlflow.resourceErrors" (list "postgresql.resources" $v.postgresql.resources)) -}}
{{- if $line }}{{ $errors = append $errors $line }}{{ end -}}
{{- end -}}
{{- range $line := splitList "\n" (include "mlflow.resourceErrors" (list "artifactStore.minio.resources" $v.artifactStore.minio.resources)) -}}
{{- if $line }}{{ $errors = append $errors $line }}{{ end -}}
{{- end -}}
{{- range $line := splitList "\n" (include "mlflow.resourceErrors" (list "gc.resources" $v.gc.resources)) -}}
{{- if $line }}{{ $errors = append $errors $line }}{{ end -}}
{{- end -}}
{{- if $v.gc.enabled -}}
{{- with include "mlflow.cronError" (list "gc.schedule" $v.gc.schedule "") -}}
{{- $errors = append $errors . -}}
{{- end -}}
{{- end -}}
{{- with include "mlflow.pdbError" . -}}
{{- $errors = append $errors . -}}
{{- end -}}
{{- range $line := splitList "\n" (include "mlflow.storageChangeErrors" .) -}}
{{- if $line }}{{ $errors = append $errors $line }}{{ end -}}
{{- end -}}
{{- if and $single (eq (toString (dig "type" "" $v.strategy)) "RollingUpdate") -}}
{{- $errors = append $errors (printf "strategy.type=RollingUpdate: backendStore.type=%s with a %s volume allows one server pod, so the new pod cannot start while the old one holds the volume. Leave strategy empty (Recreate), or use a database backend with an object artifact store." $v.backendStore.type $v.persistence.accessMode) -}}
{{- end -}}
{{- if has (toString $v.server.host) (list "127.0.0.1" "localhost" "::1") -}}
{{- if eq (toString $v.service.targetPort) "http" -}}
{{- $errors = append $errors (printf "server.host=%s makes MLflow reachable only inside its pod, so the Service would reach nothing. Route it to your proxy sidecar's port (service.targetPort=<its port name>), or keep server.host=0.0.0.0." $v.server.host) -}}
{{- end -}}
{{- if eq (toString $v.probes.port) "http" -}}
{{- $errors = append $errors (printf "server.host=%s: the kubelet probes the pod's IP, which MLflow no longer answers on. Probe through your proxy sidecar (probes.port, and probes.path if it has its own health path)." $v.server.host) -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled (not (include "mlflow.metricsProxy" .)) -}}
{{- $errors = append $errors (printf "server.host=%s with metrics.serviceMonitor.enabled: Prometheus scrapes MLflow's port at the pod IP. Turn on auth.basic (the metrics-proxy sidecar scrapes inside the pod), or let your proxy serve /metrics." $v.server.host) -}}
{{- end -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nInvalid values for the mlflow chart:\n  - %s\n" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}
