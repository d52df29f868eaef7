{{/* Names ------------------------------------------------------------------------------------- */}}

{{- define "training-job.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Kept to 52 characters: Indexed Job pods are named "<job>-<index>-<suffix>" and their hostname
"<job>-<index>" must stay a DNS label. */}}
{{- define "training-job.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "training-job.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "training"). */}}
{{- define "training-job.labels" -}}
helm.sh/chart: {{ include "training-job.chart" .root }}
{{ include "training-job.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: helm-mlops
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "training-job.selectorLabels" -}}
app.kubernetes.io/name: {{ include "training-job.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* metadata.annotations from commonAnnotations plus an optional dict "extra". */}}
{{- define "training-job.annotations" -}}
{{- $ann := merge (deepCopy (default dict .extra)) (deepCopy .root.Values.commonAnnotations) -}}
{{- with $ann -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{- define "training-job.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "training-job.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets of every pod: global.imagePullSecrets (set once by an umbrella chart) first, then
the chart's own imagePullSecrets, each name once. Entries are {name: ...} (global ones may be plain names). */}}
{{- define "training-job.imagePullSecrets" -}}
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

{{/* The training image, quoted (an empty tag is refused: python has no "latest" worth training on). */}}
{{- define "training-job.image" -}}
{{- include "training-job.imageRef" (list "image" .Values.image.repository .Values.image.tag) -}}
{{- end -}}

{{/* Facts --------------------------------------------------------------------------------------- */}}

{{/* What runs the pods: job, cronjob, indexed (distributed without operator), pytorchjob, trainjob. */}}
{{- define "training-job.kind" -}}
{{- if .Values.distributed.enabled -}}
{{- if eq .Values.distributed.operator "none" }}indexed{{ else }}{{ .Values.distributed.operator }}{{ end -}}
{{- else if .Values.cronJob.schedule -}}cronjob
{{- else -}}job
{{- end -}}
{{- end -}}

{{/* The name of the training workload (Job, Indexed Job, PyTorchJob, TrainJob): "<fullname>-<hash>",
10 hex digits of the sha256 of the job's effective spec, at most 52 characters (Indexed Job hostnames
"<job>-<index>", a PyTorchJob's "<job>-worker-<i>" Services and a TrainJob's "<job>-node-0-<i>" pods
stay DNS labels). A Job's pod template is immutable, so whatever reaches it must reach the name: a
value that changed the template but not the name would make `helm upgrade` fail on the immutable field
(the operators do not restart a PyTorchJob's or TrainJob's pods for a changed spec either).
An upgrade that leaves the spec alone (a stack changing another subchart) keeps the object, uid and
run as they are; a changed spec gets a new object and helm deletes the old one. `rerun` is a value
like any other (hashed as a string: `--set rerun=2` and "2" are the same): a new one means a new run
of the same spec.
Hashed: every value except `tests` (only the test pod reads it) and `global`, of which only what the
chart reads counts (`global.mlflow.trackingUri`, `global.imagePullSecrets`), so that an umbrella's
globals for other subcharts do not retrain; the release name and namespace (in the pods' env and
the rendezvous address; they also keep two truncated full names apart); the chart version (a new
chart may render other pods); and `configChecksum` (the launcher files, script, requirements, sweep).
A CronJob keeps `<fullname>`: its job template may change. */}}
{{- define "training-job.jobName" -}}
{{- printf "%s-%s" (include "training-job.fullname" . | trunc 41 | trimSuffix "-") (include "training-job.specHash" .) -}}
{{- end -}}

{{- define "training-job.specHash" -}}
{{- $global := .Values.global | default dict -}}
{{- $values := omit .Values "tests" "global" "metrics" -}}
{{- $_ := set $values "rerun" (toString .Values.rerun) -}}
{{- $_ := set $values "global" (dict "mlflowTrackingUri" (dig "mlflow" "trackingUri" "" $global) "imagePullSecrets" (dig "imagePullSecrets" (list) $global)) -}}
{{- $spec := dict "values" $values "release" .Release.Name "namespace" .Release.Namespace "fullname" (include "training-job.fullname" .) "chart" (include "training-job.chart" .) "config" (include "training-job.configChecksum" .) -}}
{{- toJson $spec | sha256sum | trunc 10 -}}
{{- end -}}

{{- define "training-job.headlessName" -}}
{{- include "training-job.fullname" . -}}
{{- end -}}

{{- define "training-job.trackingUri" -}}
{{- $global := dig "mlflow" "trackingUri" "" (.Values.global | default dict) -}}
{{- default $global .Values.mlflow.trackingUri -}}
{{- end -}}

{{- define "training-job.backend" -}}
{{- if ne .Values.distributed.backend "auto" -}}{{ .Values.distributed.backend }}
{{- else if gt (int .Values.gpu.count) 0 -}}nccl
{{- else -}}gloo
{{- end -}}
{{- end -}}

{{/* Number of values a grid parameter takes (0 when the entry is incomplete; validation reports it). */}}
{{- define "training-job.paramSize" -}}
{{- $p := . -}}
{{- if $p.values -}}{{ len $p.values }}
{{- else if and (eq (toString $p.type) "int") (hasKey $p "min") (hasKey $p "max") -}}
{{- $step := int (default 1 $p.step) -}}
{{- if and (gt $step 0) (ge (int $p.max) (int $p.min)) -}}{{ add1 (div (sub (int $p.max) (int $p.min)) $step) }}{{ else }}0{{ end -}}
{{- else if and (eq (toString $p.type) "float") $p.count -}}{{ int $p.count }}
{{- else -}}0
{{- end -}}
{{- end -}}

{{/* Trials of the sweep: the grid's product or sweep.trials. Capped while multiplying so a huge grid
cannot overflow; validation rejects anything above 10000. */}}
{{- define "training-job.trialCount" -}}
{{- $s := .Values.sweep -}}
{{- if eq $s.strategy "random" -}}{{ int $s.trials }}
{{- else if not $s.parameters -}}0
{{- else -}}
{{- $n := 1 -}}
{{- range $s.parameters -}}
{{- $n = min 10001 (mul $n (int (include "training-job.paramSize" .))) -}}
{{- end -}}
{{- $n -}}
{{- end -}}
{{- end -}}

{{- define "training-job.launcherDir" -}}/opt/helm-mlops/launcher{{- end -}}
{{- define "training-job.scriptDir" -}}/opt/helm-mlops/script{{- end -}}
{{- define "training-job.stateDir" -}}/opt/helm-mlops/runtime{{- end -}}
{{- define "training-job.workingDir" -}}{{ default "/workspace" .Values.workingDir }}{{- end -}}

{{- define "training-job.configChecksum" -}}
{{- $files := "" -}}
{{- range $path, $_ := .Files.Glob "files/*.py" }}{{ $files = print $files ($.Files.Get $path) }}{{ end -}}
{{- print $files (toJson .Values.script) (toJson .Values.requirements) (toJson .Values.sweep) | sha256sum -}}
{{- end -}}

{{/* Pod pieces ---------------------------------------------------------------------------------- */}}

{{- define "training-job.launcherArgs" -}}
- python3
- {{ include "training-job.launcherDir" . }}/launcher.py
- run
{{- if .Values.script.content }}
- --script
- {{ include "training-job.scriptDir" . }}/{{ .Values.script.fileName }}
{{- end }}
- --
{{- range .Values.command }}
- {{ . | quote }}
{{- end }}
{{- range .Values.script.args }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The env of the training container. Call with (dict "root" $ "mode" kind). */}}
{{- define "training-job.env" -}}
{{- $v := .root.Values -}}
{{- $root := .root -}}
- name: HOME
  value: /tmp
- name: PYTHONUNBUFFERED
  value: "1"
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
- name: HELM_MLOPS_RELEASE
  value: {{ .root.Release.Name | quote }}
- name: HELM_MLOPS_TRAINING_JOB
  value: {{ include "training-job.fullname" .root | quote }}
- name: HELM_MLOPS_POD
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: HELM_MLOPS_STATE_DIR
  value: {{ include "training-job.stateDir" .root }}
- name: HELM_MLOPS_GRACE_SECONDS
  value: {{ $v.job.terminationGracePeriodSeconds | quote }}
{{- if has .mode (list "job" "cronjob" "indexed") }}
- name: HELM_MLOPS_JOB_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['batch.kubernetes.io/controller-uid']
{{- end }}
{{- if $v.requirements }}
- name: HELM_MLOPS_REQUIREMENTS_FILE
  value: {{ include "training-job.launcherDir" .root }}/requirements.txt
{{- end }}
{{- if $v.pip.existingSecret }}
- name: PIP_INDEX_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.pip.existingSecret }}
      key: {{ $v.pip.existingSecretKey }}
{{- else if $v.pip.indexUrl }}
- name: PIP_INDEX_URL
  value: {{ $v.pip.indexUrl | quote }}
{{- end }}
{{- if $v.pip.extraIndexUrlsExistingSecret }}
- name: PIP_EXTRA_INDEX_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.pip.extraIndexUrlsExistingSecret }}
      key: {{ $v.pip.extraIndexUrlsExistingSecretKey }}
{{- else if $v.pip.extraIndexUrls }}
- name: PIP_EXTRA_INDEX_URL
  value: {{ join " " $v.pip.extraIndexUrls | quote }}
{{- end }}
{{- with $v.pip.trustedHosts }}
- name: PIP_TRUSTED_HOST
  value: {{ join " " . | quote }}
{{- end }}
{{- with $v.pip.extraArgs }}
- name: HELM_MLOPS_PIP_ARGS
  value: {{ toJson . | quote }}
{{- end }}
{{- if $v.distributed.enabled }}
- name: HELM_MLOPS_DISTRIBUTED
  value: {{ ternary "indexed" "operator" (eq .mode "indexed") | quote }}
- name: HELM_MLOPS_NPROC_PER_NODE
  value: {{ $v.distributed.nprocPerNode | quote }}
- name: HELM_MLOPS_DIST_BACKEND
  value: {{ include "training-job.backend" .root | quote }}
{{- /* Compared as a number: Helm 3.18.0 reads a schema-validated 0 as true (helm/helm#30923). */}}
{{- if gt (int $v.distributed.rdzvTimeout) 0 }}
- name: HELM_MLOPS_RDZV_TIMEOUT
  value: {{ $v.distributed.rdzvTimeout | quote }}
{{- end }}
{{- if eq .mode "indexed" }}
- name: HELM_MLOPS_NNODES
  value: {{ $v.distributed.nodes | quote }}
- name: HELM_MLOPS_MASTER_ADDR
  value: {{ printf "%s-0.%s.%s.svc" (include "training-job.jobName" .root) (include "training-job.headlessName" .root) .root.Release.Namespace | quote }}
- name: HELM_MLOPS_MASTER_PORT
  value: {{ $v.distributed.port | quote }}
{{- if $v.distributed.elastic.enabled }}
- name: HELM_MLOPS_MIN_NODES
  value: {{ $v.distributed.elastic.minNodes | quote }}
- name: HELM_MLOPS_MAX_RESTARTS
  value: {{ $v.distributed.elastic.maxRestarts | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if $v.sweep.enabled }}
- name: HELM_MLOPS_SWEEP_FILE
  value: {{ include "training-job.launcherDir" .root }}/sweep.json
{{- end }}
{{- $uri := include "training-job.trackingUri" .root -}}
{{- if $uri }}
- name: MLFLOW_TRACKING_URI
  value: {{ $uri | quote }}
- name: MLFLOW_EXPERIMENT_NAME
  value: {{ default .root.Release.Name $v.mlflow.experimentName | quote }}
- name: HELM_MLOPS_RUN_NAME
  value: {{ default (include "training-job.fullname" .root) $v.mlflow.runName | quote }}
- name: HELM_MLOPS_MLFLOW_CREATE_RUN
  value: {{ $v.mlflow.createRun | quote }}
{{- with $v.mlflow.existingSecret }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $v.mlflow.usernameKey }}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $v.mlflow.passwordKey }}
{{- end }}
{{- end }}
{{- with $v.mlflow.s3.endpointUrl }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $v.mlflow.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $v.mlflow.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $v.mlflow.s3.secretAccessKeyKey }}
{{- end }}
{{- with $v.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "training-job.resources" -}}
{{- $res := deepCopy .Values.resources -}}
{{- $gpus := int .Values.gpu.count -}}
{{- if gt $gpus 0 -}}
{{- $_ := set $res "requests" (merge (dict .Values.gpu.resourceName $gpus) (default dict $res.requests)) -}}
{{- $_ := set $res "limits" (merge (dict .Values.gpu.resourceName $gpus) (default dict $res.limits)) -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}

{{- define "training-job.volumeMounts" -}}
- name: launcher
  mountPath: {{ include "training-job.launcherDir" . }}
  readOnly: true
{{- if .Values.script.content }}
- name: script
  mountPath: {{ include "training-job.scriptDir" . }}
  readOnly: true
{{- end }}
- name: runtime
  mountPath: {{ include "training-job.stateDir" . }}
- name: tmp
  mountPath: /tmp
{{- if not .Values.workingDir }}
- name: workspace
  mountPath: /workspace
{{- end }}
{{- if .Values.shm.enabled }}
- name: dshm
  mountPath: /dev/shm
{{- end }}
{{- range .Values.volumes }}
- name: data-{{ .name }}
  mountPath: {{ .mountPath }}
  {{- with .subPath }}
  subPath: {{ . }}
  {{- end }}
  {{- if or .readOnly (and .pvc .pvc.readOnly) }}
  readOnly: true
  {{- end }}
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "training-job.claimName" -}}
{{- printf "%s-%s" (include "training-job.fullname" .root | trunc 40 | trimSuffix "-") .volume.name -}}
{{- end -}}

{{- define "training-job.volumes" -}}
{{- $root := . -}}
- name: launcher
  configMap:
    name: {{ include "training-job.fullname" . }}-launcher
    defaultMode: 0444
{{- if .Values.script.content }}
- name: script
  configMap:
    name: {{ include "training-job.fullname" . }}-script
    defaultMode: 0444
{{- end }}
- name: runtime
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- if not .Values.workingDir }}
- name: workspace
  emptyDir: {}
{{- end }}
{{- if .Values.shm.enabled }}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.shm.sizeLimit }}
{{- end }}
{{- range .Values.volumes }}
- name: data-{{ .name }}
  {{- if .pvc }}
  persistentVolumeClaim:
    claimName: {{ ternary (include "training-job.claimName" (dict "root" $root "volume" .)) .pvc.claimName (and (hasKey .pvc "create") .pvc.create) }}
    {{- if .pvc.readOnly }}
    readOnly: true
    {{- end }}
  {{- else if hasKey . "emptyDir" }}
  emptyDir: {{ toJson (default dict .emptyDir) }}
  {{- else if .secret }}
  secret: {{ toJson .secret }}
  {{- else if .configMap }}
  configMap: {{ toJson .configMap }}
  {{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "training-job.tolerations" -}}
{{- $tol := default list .Values.tolerations -}}
{{- if and (gt (int .Values.gpu.count) 0) .Values.gpu.tolerateTaint -}}
{{- $tol = append $tol (dict "key" .Values.gpu.resourceName "operator" "Exists" "effect" "NoSchedule") -}}
{{- end -}}
{{- with $tol }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Scheduling and identity fields shared by every pod the chart runs. */}}
{{- define "training-job.podScheduling" -}}
serviceAccountName: {{ include "training-job.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
{{- with include "training-job.imagePullSecrets" . }}
{{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- include "training-job.tolerations" . }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.schedulerName }}
schedulerName: {{ . }}
{{- end }}
{{- with .Values.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .Values.job.terminationGracePeriodSeconds }}
{{- end -}}

{{/* The training container. Call with (dict "root" $ "mode" kind "name" containerName). */}}
{{- define "training-job.container" -}}
{{- $v := .root.Values -}}
- name: {{ .name }}
  image: {{ include "training-job.image" .root }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command:
    {{- include "training-job.launcherArgs" .root | nindent 4 }}
  workingDir: {{ include "training-job.workingDir" .root }}
  env:
    {{- include "training-job.env" . | nindent 4 }}
  {{- with $v.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if eq .mode "indexed" }}
  ports:
    - name: rendezvous
      containerPort: {{ $v.distributed.port }}
  {{- end }}
  resources:
    {{- include "training-job.resources" .root | nindent 4 }}
  securityContext:
    {{- toYaml $v.containerSecurityContext | nindent 4 }}
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
    {{- include "training-job.volumeMounts" .root | nindent 4 }}
{{- end -}}

{{/* A full pod template. Call with (dict "root" $ "mode" kind "restartPolicy" policy "containerName" n). */}}
{{- define "training-job.podTemplate" -}}
{{- $v := .root.Values -}}
metadata:
  labels:
    {{- include "training-job.selectorLabels" (dict "root" .root "component" "training") | nindent 4 }}
    helm-mlops.io/training-job: {{ include "training-job.fullname" .root }}
    app.kubernetes.io/part-of: helm-mlops
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "training-job.configChecksum" .root }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  restartPolicy: {{ .restartPolicy }}
  {{- if eq .mode "indexed" }}
  subdomain: {{ include "training-job.headlessName" .root }}
  {{- end }}
  {{- include "training-job.podScheduling" .root | nindent 2 }}
  {{- with $v.initContainers }}
  initContainers:
    {{- tpl (toYaml .) $.root | nindent 4 }}
  {{- end }}
  containers:
    {{- include "training-job.container" (dict "root" .root "mode" .mode "name" .containerName) | nindent 4 }}
    {{- with $v.sidecars }}
    {{- tpl (toYaml .) $.root | nindent 4 }}
    {{- end }}
  volumes:
    {{- include "training-job.volumes" .root | nindent 4 }}
{{- end -}}

{{/* A Job spec (plain, sweep or distributed Indexed Job); shared by the Job and the CronJob. */}}
{{- define "training-job.jobSpec" -}}
{{- $v := .root.Values -}}
{{- $mode := .mode -}}
{{- if $v.sweep.enabled }}
completionMode: Indexed
completions: {{ include "training-job.trialCount" .root }}
parallelism: {{ min (int $v.sweep.parallelism) (int (include "training-job.trialCount" .root)) }}
backoffLimitPerIndex: {{ $v.sweep.backoffLimitPerIndex }}
{{- if gt (int $v.sweep.maxFailedIndexes) 0 }}
maxFailedIndexes: {{ $v.sweep.maxFailedIndexes }}
{{- end }}
{{- else if eq $mode "indexed" }}
completionMode: Indexed
completions: {{ $v.distributed.nodes }}
parallelism: {{ $v.distributed.nodes }}
backoffLimit: {{ $v.job.backoffLimit }}
{{- else }}
backoffLimit: {{ $v.job.backoffLimit }}
{{- end }}
{{- if gt (int $v.job.activeDeadlineSeconds) 0 }}
activeDeadlineSeconds: {{ $v.job.activeDeadlineSeconds }}
{{- end }}
{{- if ge (int $v.job.ttlSecondsAfterFinished) 0 }}
ttlSecondsAfterFinished: {{ $v.job.ttlSecondsAfterFinished }}
{{- end }}
{{- if and (eq $v.job.restartPolicy "Never") (or $v.job.nonRetriableExitCodes $v.job.ignoreDisruptions) }}
podFailurePolicy:
  rules:
    {{- if $v.job.ignoreDisruptions }}
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
    {{- end }}
    {{- with $v.job.nonRetriableExitCodes }}
    - action: {{ ternary "FailIndex" "FailJob" $v.sweep.enabled }}
      onExitCodes:
        containerName: train
        operator: In
        values: {{ toJson . }}
    {{- end }}
{{- end }}
template:
  {{- include "training-job.podTemplate" (dict "root" .root "mode" $mode "restartPolicy" $v.job.restartPolicy "containerName" "train") | nindent 2 }}
{{- end -}}

{{/* Kueue's queue label on the training workload (Job, CronJob's jobs, PyTorchJob, TrainJob): Kueue's
webhook then creates it suspended and admits it when the queue has quota. */}}
{{- define "training-job.queueLabel" -}}
{{- with .Values.kueue.queueName -}}
kueue.x-k8s.io/queue-name: {{ . | quote }}
{{- end -}}
{{- end -}}

{{/* Checks -------------------------------------------------------------------------------------- */}}
{{/* The same in every helm-mlops chart but for the name prefix (tests/test_chart_checks.py). */}}

{{/* A Kubernetes quantity ("500m", "2Gi", "1.5", "1e3", 4) as a float64, printed as text; empty when it
is not a quantity (the schema reports those). Decimal suffixes and exponents go into the number's text
("500m" parses as "500e-3"), so equal quantities written differently ("0.5", "500m") give the same
float; binary suffixes multiply by 1024 once per step (mulf is exact for it; 2^60 in one go is not). */}}
{{- define "training-job.quantity" -}}
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
{{- define "training-job.resourceErrors" -}}
{{- $path := index . 0 -}}
{{- $res := index . 1 | default dict -}}
{{- $limits := get $res "limits" | default dict -}}
{{- range $name, $request := get $res "requests" | default dict -}}
{{- if hasKey $limits $name -}}
{{- $limit := index $limits $name -}}
{{- $r := include "training-job.quantity" $request -}}
{{- $l := include "training-job.quantity" $limit -}}
{{- if and $r $l (gt (float64 $r) (float64 $l)) }}
{{ printf "%s.requests.%s (%v) is above %s.limits.%s (%v): Kubernetes refuses a request larger than its limit. Lower the request or raise the limit." $path $name $request $path $name $limit }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Why a CronJob schedule is one Kubernetes refuses, or nothing. Kubernetes parses it with robfig/cron
v3 (ParseStandard: five fields or a descriptor) and refuses TZ= / CRON_TZ= in it. Call with
(list "value.path" schedule "time zone value path or empty"). */}}
{{- define "training-job.cronError" -}}
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
{{- else if and (eq (len $rangeStep) 2) (eq (include "training-job.cronInt" (last $rangeStep)) "0") -}}
{{- $why = printf "the step of the %s field %q is 0" $name $part -}}
{{- else if has (first $bounds) (list "*" "?") -}}
{{- $start = $min -}}{{- $end = $max -}}
{{- else -}}
{{- range $j, $b := $bounds -}}
{{- $n := -1 -}}
{{- if hasKey $names (lower $b) -}}{{- $n = get $names (lower $b) -}}
{{- else if regexMatch "^\\+?[0-9]+$" $b -}}{{- $n = atoi (include "training-job.cronInt" $b) -}}
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
{{- define "training-job.cronInt" -}}
{{- $d := regexReplaceAll "^\\+?0*([0-9])" (toString .) "${1}" -}}
{{- if gt (len $d) 5 }}99999{{ else }}{{ atoi $d }}{{ end -}}
{{- end -}}

{{/* A container image "repository:tag", quoted; refuses an empty repository or tag, naming the values.
Call with (list "image.path" repository tag). */}}
{{- define "training-job.imageRef" -}}
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
