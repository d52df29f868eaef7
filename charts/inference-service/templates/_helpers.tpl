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

{{/* The server image, quoted; an empty tag is refused with the value named (inference-service.imageRef). */}}
{{- define "inference-service.image" -}}
{{- if eq .Values.runtime "mlserver" }}{{ include "inference-service.imageRef" (list "mlserver.image" .Values.mlserver.image.repository .Values.mlserver.image.tag) }}
{{- else if eq .Values.runtime "bentoml" }}{{ include "inference-service.imageRef" (list "bentoml.image" .Values.bentoml.image.repository .Values.bentoml.image.tag) }}
{{- else }}{{ include "inference-service.pythonImage" . }}
{{- end -}}
{{- end -}}

{{/* The python image that runs the helm-mlops runtime, the dependency install and the model fetch. */}}
{{- define "inference-service.pythonImage" -}}
{{- include "inference-service.imageRef" (list "fastapi.image" .Values.fastapi.image.repository .Values.fastapi.image.tag) -}}
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

{{/* The PodDisruptionBudget's one budget line. `maxUnavailable` when set; else `minAvailable`, unless it
would leave no pod evictable at the lowest replica count (autoscaling.minReplicas with an HPA, else
replicaCount): with a single pod that is `maxUnavailable: 1` (a budget of minAvailable 1 against one pod
blocks every node drain), with several pods the values are refused ("inference-service.pdbError"). */}}
{{- define "inference-service.pdbLowestReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.minReplicas }}{{ else }}{{ int .Values.replicaCount }}{{ end -}}
{{- end -}}

{{/* How many pods minAvailable asks for at the lowest replica count (a percentage rounds up, as the
disruption controller does). */}}
{{- define "inference-service.pdbRequired" -}}
{{- $min := toString .Values.podDisruptionBudget.minAvailable -}}
{{- $lowest := int (include "inference-service.pdbLowestReplicas" .) -}}
{{- if hasSuffix "%" $min -}}
{{- div (add (mul (int (trimSuffix "%" $min)) $lowest) 99) 100 -}}
{{- else -}}
{{- int $min -}}
{{- end -}}
{{- end -}}

{{- define "inference-service.pdbBudget" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if not (kindIs "invalid" $pdb.maxUnavailable) -}}
maxUnavailable: {{ $pdb.maxUnavailable }}
{{- else if ge (int (include "inference-service.pdbRequired" .)) (int (include "inference-service.pdbLowestReplicas" .)) -}}
maxUnavailable: 1
{{- else -}}
minAvailable: {{ $pdb.minAvailable }}
{{- end -}}
{{- end -}}

{{/* Non-empty when the chart replaced minAvailable by maxUnavailable: 1 (said in NOTES). */}}
{{- define "inference-service.pdbAdapted" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and $pdb.enabled (ne .Values.runtime "kserve") (kindIs "invalid" $pdb.maxUnavailable) (hasPrefix "maxUnavailable" (include "inference-service.pdbBudget" .)) -}}
podDisruptionBudget.minAvailable={{ $pdb.minAvailable }} would block every node drain with {{ include "inference-service.pdbLowestReplicas" . }} pod: the PodDisruptionBudget uses maxUnavailable: 1 instead. Run 2+ replicas (replicaCount, or autoscaling.minReplicas) to keep a pod serving during drains.
{{- end -}}
{{- end -}}

{{/* Non-empty when minAvailable leaves no pod evictable with several pods: refused by validation. */}}
{{- define "inference-service.pdbError" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- $lowest := int (include "inference-service.pdbLowestReplicas" .) -}}
{{- if and $pdb.enabled (ne .Values.runtime "kserve") (kindIs "invalid" $pdb.maxUnavailable) (gt $lowest 1) (ge (int (include "inference-service.pdbRequired" .)) $lowest) -}}
podDisruptionBudget.minAvailable={{ $pdb.minAvailable }} with {{ $lowest }} pods ({{ ternary "autoscaling.minReplicas" "replicaCount" .Values.autoscaling.enabled }}) leaves no pod evictable, so node drains block forever. Set podDisruptionBudget.minAvailable to at most {{ sub $lowest 1 }}, or set podDisruptionBudget.maxUnavailable (e.g. 1).
{{- end -}}
{{- end -}}

{{/* The predictor's ServiceAccount under runtime=kserve: kserve.serviceAccountName, else the chart's. */}}
{{- define "inference-service.kserveServiceAccount" -}}
{{- default (include "inference-service.serviceAccountName" .) .Values.kserve.serviceAccountName -}}
{{- end -}}

{{/* The model name the serving runtime answers to: KServe's built-in runtimes name the model after the
InferenceService; every other runtime (and the helm-mlops runtime as a KServe custom predictor) uses
model.name. */}}
{{- define "inference-service.servedModelName" -}}
{{- if and (eq .Values.runtime "kserve") (include "inference-service.kserveFormat" .) -}}
{{- include "inference-service.fullname" . -}}
{{- else -}}
{{- .Values.model.name -}}
{{- end -}}
{{- end -}}

{{/* KServe's storage initializer reads the S3 endpoint from annotations (on the Secret it takes keys
from, or on an IRSA ServiceAccount): serving.kserve.io/s3-* from model.source.s3. */}}
{{- define "inference-service.kserveS3Annotations" -}}
{{- $s3 := .Values.model.source.s3 -}}
{{- $url := urlParse $s3.endpointUrl -}}
serving.kserve.io/s3-endpoint: {{ $url.host | quote }}
serving.kserve.io/s3-usehttps: {{ ternary "1" "0" (eq $url.scheme "https") | quote }}
serving.kserve.io/s3-region: {{ $s3.region | quote }}
{{- end -}}

{{/* The whole CPUs of a CPU quantity ("2", 4, "1500m", "2.5"), rounded down, at least 1; 1 when it is
empty (no limit) or not a quantity (the schema refuses those). */}}
{{- define "inference-service.wholeCpus" -}}
{{- max 1 (int (floor (float64 (include "inference-service.quantity" . | default "0")))) -}}
{{- end -}}

{{/* HM_RUNTIME_WORKERS: fastapi.workers when set; 1 with model monitoring (its windows and the feedback's
prediction memory are per process) or a GPU (each worker would hold the model on it); else the whole CPUs of resources.limits.cpu, 1 without a CPU limit
(never the runtime's `auto`, which without a limit would fork a worker per node core). */}}
{{- define "inference-service.workers" -}}
{{- $v := .Values -}}
{{- if not (kindIs "invalid" $v.fastapi.workers) -}}
{{- int64 $v.fastapi.workers -}}
{{- else if or $v.monitoring.enabled (gt (int64 $v.gpu.count) 0) -}}
1
{{- else -}}
{{- include "inference-service.wholeCpus" (dig "limits" "cpu" "" (default dict $v.resources)) -}}
{{- end -}}
{{- end -}}

{{/* Checks -------------------------------------------------------------------------------------- */}}
{{/* The same in every helm-mlops chart but for the name prefix (tests/test_chart_checks.py). */}}

{{/* A Kubernetes quantity ("500m", "2Gi", "1.5", "1e3", 4) as a float64, printed as text; empty when it
is not a quantity (the schema reports those). Decimal suffixes and exponents go into the number's text
("500m" parses as "500e-3"), so equal quantities written differently ("0.5", "500m") give the same
float; binary suffixes multiply by 1024 once per step (mulf is exact for it; 2^60 in one go is not). */}}
{{- define "inference-service.quantity" -}}
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
{{- define "inference-service.resourceErrors" -}}
{{- $path := index . 0 -}}
{{- $res := index . 1 | default dict -}}
{{- $limits := get $res "limits" | default dict -}}
{{- range $name, $request := get $res "requests" | default dict -}}
{{- if hasKey $limits $name -}}
{{- $limit := index $limits $name -}}
{{- $r := include "inference-service.quantity" $request -}}
{{- $l := include "inference-service.quantity" $limit -}}
{{- if and $r $l (gt (float64 $r) (float64 $l)) }}
{{ printf "%s.requests.%s (%v) is above %s.limits.%s (%v): Kubernetes refuses a request larger than its limit. Lower the request or raise the limit." $path $name $request $path $name $limit }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Why a CronJob schedule is one Kubernetes refuses, or nothing. Kubernetes parses it with robfig/cron
v3 (ParseStandard: five fields or a descriptor) and refuses TZ= / CRON_TZ= in it. Call with
(list "value.path" schedule "time zone value path or empty"). */}}
{{- define "inference-service.cronError" -}}
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
{{- else if and (eq (len $rangeStep) 2) (eq (include "inference-service.cronInt" (last $rangeStep)) "0") -}}
{{- $why = printf "the step of the %s field %q is 0" $name $part -}}
{{- else if has (first $bounds) (list "*" "?") -}}
{{- $start = $min -}}{{- $end = $max -}}
{{- else -}}
{{- range $j, $b := $bounds -}}
{{- $n := -1 -}}
{{- if hasKey $names (lower $b) -}}{{- $n = get $names (lower $b) -}}
{{- else if regexMatch "^\\+?[0-9]+$" $b -}}{{- $n = atoi (include "inference-service.cronInt" $b) -}}
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
{{- define "inference-service.cronInt" -}}
{{- $d := regexReplaceAll "^\\+?0*([0-9])" (toString .) "${1}" -}}
{{- if gt (len $d) 5 }}99999{{ else }}{{ atoi $d }}{{ end -}}
{{- end -}}

{{/* A container image "repository:tag", quoted; refuses an empty repository or tag, naming the values.
Call with (list "image.path" repository tag). */}}
{{- define "inference-service.imageRef" -}}
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
