{{/* Names ------------------------------------------------------------------------------------- */}}

{{- define "inference-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "inference-service.fullname" -}}
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

{{- define "inference-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "server"). */}}
{{- define "inference-service.labels" -}}
helm.sh/chart: {{ include "inference-service.chart" .root }}
{{ include "inference-service.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: helm-mlops
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "inference-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inference-service.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* metadata.annotations from commonAnnotations plus an optional dict "extra". */}}
{{- define "inference-service.annotations" -}}
{{- $ann := merge (deepCopy (default dict .extra)) (deepCopy .root.Values.commonAnnotations) -}}
{{- with $ann -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{- define "inference-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "inference-service.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets of every pod: global.imagePullSecrets (set once by an umbrella chart) first, then
the chart's own imagePullSecrets, each name once. Entries are {name: ...} (global ones may be plain names). */}}
{{- define "inference-service.imagePullSecrets" -}}
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

{{- define "inference-service.image" -}}
{{- if eq .Values.runtime "mlserver" }}{{ printf "%s:%s" .Values.mlserver.image.repository .Values.mlserver.image.tag }}
{{- else if eq .Values.runtime "bentoml" }}{{ printf "%s:%s" .Values.bentoml.image.repository .Values.bentoml.image.tag }}
{{- else }}{{ include "inference-service.pythonImage" . }}
{{- end -}}
{{- end -}}

{{/* The python image that runs the helm-mlops runtime, the dependency install and the model fetch. */}}
{{- define "inference-service.pythonImage" -}}
{{- printf "%s:%s" .Values.fastapi.image.repository .Values.fastapi.image.tag -}}
{{- end -}}


{{/* Facts --------------------------------------------------------------------------------------- */}}

{{- define "inference-service.fileName" -}}
{{- $s := .Values.model.source -}}
{{- if eq $s.type "pvc" }}{{ base $s.pvc.path }}
{{- else if eq $s.type "s3" }}{{ base $s.s3.key }}
{{- else if and (eq $s.type "https") $s.https.existingSecret }}{{ $s.https.fileName }}
{{- else if eq $s.type "https" }}{{ base (regexReplaceAll "[?#].*$" $s.https.url "") }}
{{- else if eq $s.type "inline" }}{{ $s.inline.fileName }}
{{- end -}}
{{- end -}}

{{/* The model's format: explicit, or from the file name (empty when it cannot be told). */}}
{{- define "inference-service.format" -}}
{{- if .Values.model.format }}{{ .Values.model.format }}
{{- else if eq .Values.model.source.type "mlflow" }}mlflow
{{- else -}}
{{- $ext := lower (ext (include "inference-service.fileName" .)) -}}
{{- get (dict ".pkl" "sklearn" ".pickle" "sklearn" ".joblib" "joblib" ".onnx" "onnx" ".pt" "torch" ".pth" "torch" ".h5" "keras" ".keras" "keras" ".bst" "xgboost" ".ubj" "xgboost" ".txt" "lightgbm") $ext -}}
{{- end -}}
{{- end -}}

{{/* Whether model.sha256 is verified before the serving process loads the file: the helm-mlops runtime
checks it itself (also as KServe's custom predictor for torch and keras), and the fetch init container
checks what it downloads into the pod's own emptyDir. MLServer on a PVC and KServe's own servers read
the file unchecked. */}}
{{- define "inference-service.pinVerified" -}}
{{- $format := include "inference-service.format" . -}}
{{- if eq .Values.runtime "fastapi" }}true
{{- else if and (eq .Values.runtime "kserve") (has $format (list "torch" "keras")) }}true
{{- else if include "inference-service.fetches" . }}true
{{- end -}}
{{- end -}}

{{- define "inference-service.fetches" -}}
{{- if and (has .Values.model.source.type (list "s3" "https" "inline")) (ne .Values.runtime "bentoml") (ne .Values.runtime "kserve") }}true{{ end -}}
{{- end -}}

{{- define "inference-service.modelDir" -}}/opt/helm-mlops/model{{- end -}}
{{- define "inference-service.pvcDir" -}}/opt/helm-mlops/model-src{{- end -}}

{{/* Where the serving container finds the model: a path or an MLflow URI. */}}
{{- define "inference-service.modelLocation" -}}
{{- $s := .Values.model.source -}}
{{- if eq $s.type "mlflow" }}{{ $s.mlflow.uri }}
{{- else if eq $s.type "pvc" }}{{ include "inference-service.pvcDir" . }}/{{ trimPrefix "/" $s.pvc.path }}
{{- else }}{{ include "inference-service.modelDir" . }}/{{ include "inference-service.fileName" . }}
{{- end -}}
{{- end -}}

{{- define "inference-service.trackingUri" -}}
{{- $global := dig "mlflow" "trackingUri" "" (.Values.global | default dict) -}}
{{- default $global .Values.model.source.mlflow.trackingUri -}}
{{- end -}}

{{- define "inference-service.port" -}}
{{- get (dict "fastapi" "8000" "mlserver" "8080" "bentoml" "3000" "kserve" "8080") .Values.runtime -}}
{{- end -}}

{{/* pip requirements of the helm-mlops runtime for the model's format. */}}
{{- define "inference-service.requirements" -}}
{{- $lock := get (dict "sklearn" "sklearn" "joblib" "sklearn" "onnx" "onnx" "torch" "torch" "keras" "keras" "mlflow" "mlflow") (include "inference-service.format" .) -}}
{{- $reqs := list -}}
{{- range .Files.Lines (printf "files/requirements/%s.in" (default "onnx" $lock)) -}}
{{- if and (trim .) (not (hasPrefix "#" .)) -}}
{{- $reqs = append $reqs (trim .) -}}
{{- end -}}
{{- end -}}
{{- concat $reqs .Values.fastapi.requirements | toJson -}}
{{- end -}}

{{/* The hash-pinned lock (files/requirements/<lock>.txt) that install-deps installs, or empty when
fastapi.requirements asks for extra packages (then pip resolves them, unpinned, as the user asked). */}}
{{- define "inference-service.lockFile" -}}
{{- if not .Values.fastapi.requirements -}}
{{- get (dict "sklearn" "sklearn" "joblib" "sklearn" "onnx" "onnx" "torch" "torch" "keras" "keras" "mlflow" "mlflow") (include "inference-service.format" .) -}}
{{- end -}}
{{- end -}}

{{- define "inference-service.mlserverImplementation" -}}
{{- get (dict "sklearn" "mlserver_sklearn.SKLearnModel" "joblib" "mlserver_sklearn.SKLearnModel" "xgboost" "mlserver_xgboost.XGBoostModel" "lightgbm" "mlserver_lightgbm.LightGBMModel" "mlflow" "mlserver_mlflow.MLflowRuntime") (include "inference-service.format" .) -}}
{{- end -}}

{{- define "inference-service.kserveFormat" -}}
{{- get (dict "sklearn" "sklearn" "joblib" "sklearn" "onnx" "onnx" "xgboost" "xgboost" "lightgbm" "lightgbm" "mlflow" "mlflow") (include "inference-service.format" .) -}}
{{- end -}}

{{- define "inference-service.storageUri" -}}
{{- $s := .Values.model.source -}}
{{- if .Values.kserve.storageUri }}{{ .Values.kserve.storageUri }}
{{- else if eq $s.type "s3" }}s3://{{ $s.s3.bucket }}/{{ $s.s3.key }}
{{- else if eq $s.type "https" }}{{ $s.https.url }}
{{- else if eq $s.type "pvc" }}pvc://{{ $s.pvc.claimName }}/{{ trimPrefix "/" $s.pvc.path }}
{{- else if eq $s.type "mlflow" }}{{ $s.mlflow.uri }}
{{- end -}}
{{- end -}}

{{- define "inference-service.configChecksum" -}}
{{- $files := "" -}}
{{- range $path, $_ := .Files.Glob "files/**.py" }}{{ $files = print $files ($.Files.Get $path) }}{{ end -}}
{{- print $files (toJson .Values.model) (toJson .Values.mlserver) | sha256sum -}}
{{- end -}}

{{- define "inference-service.resources" -}}
{{- $res := deepCopy .Values.resources -}}
{{- $gpus := int .Values.gpu.count -}}
{{- if gt $gpus 0 -}}
{{- $_ := set $res "requests" (merge (dict .Values.gpu.resourceName $gpus) (default dict $res.requests)) -}}
{{- $_ := set $res "limits" (merge (dict .Values.gpu.resourceName $gpus) (default dict $res.limits)) -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}

{{/* Exposure findings, one per line: warned in NOTES, refused under global.strictSecurity. */}}
{{- define "inference-service.exposure" -}}
{{- $v := .Values -}}
{{- if $v.ingress.enabled }}
{{- if not $v.ingress.tls.enabled }}
ingress.tls.enabled=false: requests and predictions cross the network in clear text; enable TLS.
{{- end }}
{{- if not (regexMatch "auth" (keys $v.ingress.annotations | join ",")) }}
the Ingress has no authentication: anyone who reaches the host can call the model. Add your ingress controller's auth annotations (e.g. nginx.ingress.kubernetes.io/auth-url or auth-type) to ingress.annotations.
{{- end }}
{{- end }}
{{- if and (not $v.networkPolicy.enabled) (ne $v.runtime "kserve") }}
networkPolicy.enabled=false: every pod of the cluster can call the model.
{{- end }}
{{- end -}}

{{- define "inference-service.strictSecurity" -}}
{{- if (dig "strictSecurity" false (.Values.global | default dict)) }}true{{ end -}}
{{- end -}}
