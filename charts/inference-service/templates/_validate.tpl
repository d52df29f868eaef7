{{/* Cross-field rules. Each message names the value to change and how. */}}
{{- define "inference-service.validate" -}}
{{- $v := .Values -}}
{{- $s := $v.model.source -}}
{{- $errors := list -}}
{{- $format := include "inference-service.format" . -}}
{{- if ne $v.runtime "bentoml" -}}
{{- if not $format -}}
{{- $errors = append $errors (printf "model.format: cannot tell the format of %q; set model.format (sklearn, joblib, onnx, torch, keras, mlflow, xgboost, lightgbm)." (include "inference-service.fileName" .)) -}}
{{- end -}}
{{- if and (eq $s.type "pvc") (not $s.pvc.claimName) -}}
{{- $errors = append $errors "model.source.pvc.claimName is required with model.source.type=pvc (or pick another source: s3, https, mlflow, inline)." -}}
{{- end -}}
{{- if and (eq $s.type "s3") (or (not $s.s3.bucket) (not $s.s3.key)) -}}
{{- $errors = append $errors "model.source.s3.bucket and model.source.s3.key are required with model.source.type=s3." -}}
{{- end -}}
{{- if and (eq $s.type "https") (not $s.https.existingSecret) (not (regexMatch "^https?://" $s.https.url)) -}}
{{- $errors = append $errors "model.source.https.url must be an http(s) URL with model.source.type=https (or set model.source.https.existingSecret)." -}}
{{- end -}}
{{- if and (eq $s.type "https") $s.https.existingSecret (not $s.https.fileName) -}}
{{- $errors = append $errors "model.source.https.fileName is required with model.source.https.existingSecret (e.g. model.onnx: its extension tells the format)." -}}
{{- end -}}
{{- if and (eq $s.type "https") (regexMatch "^https?://[^/]*@|[?&](X-Amz-Signature|X-Amz-Credential|sig|signature|token|access_token)=" $s.https.url) -}}
{{- $errors = append $errors "model.source.https.url carries credentials (user info or a signed/token query): they would sit in the Deployment for anyone who can read it. Put the URL in a Secret and set model.source.https.existingSecret." -}}
{{- end -}}
{{- if regexMatch "^[a-z+]+://[^/]*@" $v.fastapi.indexUrl -}}
{{- $errors = append $errors "fastapi.indexUrl carries credentials, which would sit in the Deployment in plain text: put the URL in a Secret and set fastapi.indexUrlExistingSecret." -}}
{{- end -}}
{{- $plain := or (and (eq $s.type "https") (hasPrefix "http://" $s.https.url)) (and (eq $s.type "s3") (hasPrefix "http://" $s.s3.endpointUrl)) -}}
{{- if and $plain (not $v.model.sha256) (not $v.model.allowInsecureHttp) -}}
{{- $errors = append $errors (printf "model.source.%s: plain http lets anyone on the network path change the model. Pin the file with model.sha256, use https, or set model.allowInsecureHttp=true." $s.type) -}}
{{- end -}}
{{- if and (eq $s.type "s3") (hasPrefix "http://" $s.s3.stsEndpointUrl) (not $v.model.allowInsecureHttp) -}}
{{- $errors = append $errors "model.source.s3.stsEndpointUrl: plain http exposes the service account token sent to STS. Use https, or set model.allowInsecureHttp=true." -}}
{{- end -}}
{{- if and (eq $s.type "mlflow") (not (regexMatch "^(models|runs):/" $s.mlflow.uri)) -}}
{{- $errors = append $errors "model.source.mlflow.uri must be models:/<name>@<alias>, models:/<name>/<version> or runs:/... with model.source.type=mlflow." -}}
{{- end -}}
{{- if and (eq $s.type "mlflow") (not (include "inference-service.trackingUri" .)) -}}
{{- $errors = append $errors "model.source.mlflow.trackingUri (or global.mlflow.trackingUri) is required with model.source.type=mlflow." -}}
{{- end -}}
{{- if eq $s.type "inline" -}}
{{- if not $s.inline.base64 -}}
{{- $errors = append $errors "model.source.inline.base64 is empty: --set-file model.source.inline.base64=model.pkl.b64 (base64 of the file)." -}}
{{- else if gt (len $s.inline.base64) 1000000 -}}
{{- $errors = append $errors (printf "model.source.inline.base64 is %d characters (about %d KiB of model); a ConfigMap holds at most 1 MiB. Put the model on a PVC (model.source.type=pvc) or in S3/MinIO (model.source.type=s3)." (len $s.inline.base64) (div (mul (len $s.inline.base64) 3) 4096)) -}}
{{- else if not (regexMatch "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$" (nospace $s.inline.base64)) -}}
{{- $errors = append $errors "model.source.inline.base64 is not base64 (the standard alphabet A-Z, a-z, 0-9, + and /, padded with =; line breaks are fine): encode the file with `base64 model.pkl > model.pkl.b64` and pass --set-file model.source.inline.base64=model.pkl.b64." -}}
{{- end -}}
{{- if and (eq $v.runtime "kserve") -}}
{{- $errors = append $errors "model.source.type=inline cannot feed KServe's storage initializer: use pvc, s3, https or mlflow with runtime=kserve." -}}
{{- end -}}
{{- end -}}
{{- if and (eq $format "mlflow") $v.model.sha256 -}}
{{- $errors = append $errors "model.sha256 cannot pin an MLflow model (a directory or registry URI, not one file): remove it, and set model.trustModel=true if you trust the model and everyone who can change it in MLflow." -}}
{{- else if and (has $format (list "sklearn" "joblib" "torch" "mlflow")) (not $v.model.trustModel) -}}
{{- $what := get (dict "sklearn" "a pickle" "joblib" "a pickle (joblib)" "torch" "a PyTorch model (TorchScript or a pickled module)" "mlflow" "an MLflow model (pyfunc)") $format -}}
{{- if eq $format "mlflow" -}}
{{- $errors = append $errors (printf "model: %s is code: loading it runs what its author wrote, and anyone who can move its registry alias decides what runs. Set model.trustModel=true if you trust it (a sha256 pin cannot verify an MLflow model)." $what) -}}
{{- else if not $v.model.sha256 -}}
{{- $errors = append $errors (printf "model: %s is code: loading it runs what the file's author wrote. Set model.trustModel=true if you trust its origin, or pin the exact file with model.sha256." $what) -}}
{{- else if not (include "inference-service.pinVerified" .) -}}
{{- $errors = append $errors (printf "model.sha256 is not verified with runtime=%s and model.source.type=%s (%s loads the file itself), so it cannot stand for trust: set model.trustModel=true, or use runtime=fastapi (which verifies the pin) or a fetched source (s3, https, inline)." $v.runtime $s.type $v.runtime) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.runtime "mlserver") $format (not (include "inference-service.mlserverImplementation" .)) -}}
{{- $errors = append $errors (printf "runtime=mlserver has no runtime for %s models (it serves sklearn, joblib, xgboost, lightgbm and mlflow). Use runtime=fastapi." $format) -}}
{{- end -}}
{{- if and (eq $v.runtime "fastapi") (has $format (list "xgboost" "lightgbm")) -}}
{{- $errors = append $errors (printf "runtime=fastapi does not load %s boosters; use runtime=mlserver (or save the model as an MLflow model)." $format) -}}
{{- end -}}
{{- if and (eq $v.runtime "kserve") (has $format (list "torch" "keras")) (not $v.fastapi.prebuilt) -}}
{{- $errors = append $errors (printf "runtime=kserve serves %s models with the helm-mlops runtime as a custom predictor, which needs an image with its dependencies: build docker/runtime.Dockerfile, set fastapi.image and fastapi.prebuilt=true." $format) -}}
{{- end -}}
{{- if and (eq $v.runtime "kserve") $v.autoscaling.enabled -}}
{{- $errors = append $errors "autoscaling.enabled does not apply to runtime=kserve: KServe scales the predictor (kserve.minReplicas, kserve.maxReplicas, kserve.scaleMetric)." -}}
{{- end -}}
{{- if and (eq $v.runtime "kserve") (gt (int $v.kserve.minReplicas) (int $v.kserve.maxReplicas)) -}}
{{- $errors = append $errors "kserve.maxReplicas must be >= kserve.minReplicas." -}}
{{- end -}}
{{- if and (eq $v.runtime "kserve") (eq (int $v.kserve.minReplicas) 0) (eq $v.kserve.deploymentMode "RawDeployment") -}}
{{- $errors = append $errors "kserve.minReplicas=0 (scale to zero) needs kserve.deploymentMode=Serverless." -}}
{{- end -}}
{{- if and (eq $v.runtime "bentoml") (or (not $v.bentoml.image.repository) (not $v.bentoml.image.tag)) -}}
{{- $errors = append $errors "bentoml.image.repository and bentoml.image.tag are required with runtime=bentoml (the image `bentoml containerize` built)." -}}
{{- end -}}
{{- if and $v.autoscaling.enabled (lt (int $v.autoscaling.maxReplicas) (int $v.autoscaling.minReplicas)) -}}
{{- $errors = append $errors "autoscaling.maxReplicas must be >= autoscaling.minReplicas." -}}
{{- end -}}
{{- if and $v.ingress.enabled (not $v.ingress.host) -}}
{{- $errors = append $errors "ingress.host is required when ingress.enabled=true." -}}
{{- end -}}
{{- if and $v.httpRoute.enabled (not $v.httpRoute.parentRefs) -}}
{{- $errors = append $errors "httpRoute.parentRefs needs at least one Gateway when httpRoute.enabled=true." -}}
{{- end -}}
{{- if include "inference-service.strictSecurity" . -}}
{{- range $finding := splitList "\n" (include "inference-service.exposure" . | trim) -}}
{{- if $finding -}}
{{- $errors = append $errors (printf "global.strictSecurity: %s" $finding) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $line := splitList "\n" (include "inference-service.resourceErrors" (list "resources" (fromYaml (include "inference-service.resources" .)))) -}}
{{- if $line }}{{ $errors = append $errors $line }}{{ end -}}
{{- end -}}
{{- with include "inference-service.pdbError" . -}}
{{- $errors = append $errors . -}}
{{- end -}}
{{- if eq $v.runtime "kserve" -}}
{{- $k := $v.kserve -}}
{{- $src := $v.model.source -}}
{{- if and (eq $k.deploymentMode "RawDeployment") (has $k.scaleMetric (list "concurrency" "rps")) -}}
{{- $errors = append $errors (printf "kserve.scaleMetric=%s needs kserve.deploymentMode=Serverless (Knative's autoscaler): RawDeployment scales with an HPA on cpu or memory only. Set kserve.scaleMetric=cpu|memory, or kserve.deploymentMode=Serverless." $k.scaleMetric) -}}
{{- end -}}
{{- if and (eq $src.type "mlflow") (not $k.storageUri) -}}
{{- $errors = append $errors (printf "model.source.mlflow.uri=%s: KServe's storage initializer cannot fetch MLflow URIs (models:/, runs:/). Set kserve.storageUri to the model version's artifact location (e.g. `mlflow artifacts` / MlflowClient().get_model_version_download_uri(name, version): s3://..., gs://...), or use runtime=fastapi|mlserver, which resolve the registry themselves." $src.mlflow.uri) -}}
{{- end -}}
{{- if and (eq $src.type "s3") $src.s3.stsEndpointUrl -}}
{{- $errors = append $errors "model.source.s3.stsEndpointUrl does not apply to runtime=kserve: KServe's storage initializer downloads the model with its own credentials (the ServiceAccount's IRSA role or attached Secret). Remove it." -}}
{{- end -}}
{{- if and (eq $src.type "s3") $src.s3.existingSecret (not $k.storageUri) -}}
{{- if or (ne $src.s3.accessKeyIdKey "AWS_ACCESS_KEY_ID") (ne $src.s3.secretAccessKeyKey "AWS_SECRET_ACCESS_KEY") -}}
{{- $errors = append $errors (printf "model.source.s3.accessKeyIdKey=%s / secretAccessKeyKey=%s: KServe's storage initializer reads the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of the Secret attached to the predictor's ServiceAccount. Store the keys under those names in %s and leave both values at their defaults." $src.s3.accessKeyIdKey $src.s3.secretAccessKeyKey $src.s3.existingSecret) -}}
{{- end -}}
{{- if $k.serviceAccountName -}}
{{- $errors = append $errors (printf "kserve.serviceAccountName=%s with model.source.s3.existingSecret=%s: the chart attaches the S3 Secret to its own ServiceAccount only. Leave kserve.serviceAccountName empty (the predictor then runs under the chart's account), or attach %s to %s yourself and remove model.source.s3.existingSecret." $k.serviceAccountName $src.s3.existingSecret $src.s3.existingSecret $k.serviceAccountName) -}}
{{- end -}}
{{- if not $v.serviceAccount.create -}}
{{- $errors = append $errors (printf "model.source.s3.existingSecret=%s with runtime=kserve needs serviceAccount.create=true: KServe takes S3 keys from the Secrets attached to the predictor's ServiceAccount, which the chart creates with the Secret attached." $src.s3.existingSecret) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.runtime "kserve") (or $v.initContainers $v.sidecars) -}}
{{- $errors = append $errors "initContainers and sidecars do not apply to runtime=kserve: KServe builds the predictor pod (use a KServe transformer, or runtime=fastapi|mlserver|bentoml)." -}}
{{- end -}}
{{- /* fastapi.device: the rules the runtime would stop at start with, said at install. */ -}}
{{- $device := toString $v.fastapi.device -}}
{{- $format := include "inference-service.format" . -}}
{{- $ours := or (eq $v.runtime "fastapi") (and (eq $v.runtime "kserve") (not (include "inference-service.kserveFormat" .))) -}}
{{- if and (ne $device "auto") (not $ours) -}}
{{- $errors = append $errors (printf "fastapi.device=%s: only the helm-mlops runtime takes a device (runtime=fastapi, or runtime=kserve with a torch/keras model); runtime=%s places the model itself. Remove fastapi.device." $device $v.runtime) -}}
{{- else if hasPrefix "cuda" $device -}}
{{- $gpus := int $v.gpu.count -}}
{{- $index := int (default "0" (index (splitList ":" (printf "%s:" $device)) 1)) -}}
{{- if not (has $format (list "torch" "onnx" "keras")) -}}
{{- $errors = append $errors (printf "fastapi.device=%s: %s models predict on the CPU only. Use fastapi.device=auto or cpu." $device $format) -}}
{{- else if eq $gpus 0 -}}
{{- $errors = append $errors (printf "fastapi.device=%s needs a GPU in the pod: set gpu.count (1 or more), or use fastapi.device=auto." $device) -}}
{{- else if ge $index $gpus -}}
{{- $errors = append $errors (printf "fastapi.device=%s is out of range with gpu.count=%d: use cuda:0 to cuda:%d." $device $gpus (sub $gpus 1)) -}}
{{- else if and (eq $format "onnx") (not $v.fastapi.prebuilt) -}}
{{- $errors = append $errors (printf "fastapi.device=%s with an ONNX model: install-deps installs the CPU onnxruntime. Build an image with onnxruntime-gpu (docker/runtime.Dockerfile) and set fastapi.image and fastapi.prebuilt=true, or use fastapi.device=auto (the CPU)." $device) -}}
{{- end -}}
{{- end -}}
{{- /* fastapi.workers: only the helm-mlops runtime forks workers, and model monitoring keeps one. */ -}}
{{- $workers := $v.fastapi.workers -}}
{{- if not (kindIs "invalid" $workers) -}}
{{- if not $ours -}}
{{- $own := get (dict "mlserver" " (MLServer's own: mlserver.parallelWorkers)" "bentoml" " (BentoML's own: the Bento's service config)") $v.runtime -}}
{{- $errors = append $errors (printf "fastapi.workers=%v: only the helm-mlops runtime takes workers (runtime=fastapi, or runtime=kserve with a torch/keras model); runtime=%s runs its own processes%s. Remove fastapi.workers." $workers $v.runtime $own) -}}
{{- else if and $v.monitoring.enabled (gt (int64 $workers) 1) -}}
{{- $errors = append $errors (printf "fastapi.workers=%v with monitoring.enabled=true%s: the model monitor's drift windows and the feedback's prediction memory live in one process, so %v workers would report wrong totals. Remove fastapi.workers (monitoring runs 1 worker) or set it to 1, or set monitoring.enabled=false." $workers (ternary " and monitoring.feedback.enabled=true" "" $v.monitoring.feedback.enabled) $workers) -}}
{{- end -}}
{{- end -}}
{{- $mon := $v.monitoring -}}
{{- if $mon.enabled -}}
{{- if ne $v.runtime "fastapi" -}}
{{- $errors = append $errors (printf "monitoring.enabled: model monitoring runs in the helm-mlops runtime only (runtime=fastapi), not runtime=%s. Set monitoring.enabled=false or runtime=fastapi." $v.runtime) -}}
{{- else if eq $s.type "inline" -}}
{{- $errors = append $errors "monitoring.enabled with model.source.type=inline: the reference sample cannot be inline. Serve the model from pvc, s3, https or mlflow, or set monitoring.enabled=false." -}}
{{- else if not $mon.reference.file -}}
{{- $errors = append $errors "monitoring.reference.file is required with monitoring.enabled: a sample of training rows (.npy, .csv, .parquet) from the model's source (a path in the claim, a key in the bucket, a URL, or an MLflow artifact URI)." -}}
{{- else if and (eq $s.type "https") (not (regexMatch "^https?://" $mon.reference.file)) -}}
{{- $errors = append $errors "monitoring.reference.file must be an http(s) URL with model.source.type=https." -}}
{{- else if and (eq $s.type "mlflow") (not (regexMatch "^(runs|models|mlflow-artifacts):/" $mon.reference.file)) -}}
{{- $errors = append $errors "monitoring.reference.file must be an MLflow artifact URI with model.source.type=mlflow, e.g. runs:/<run id>/reference.csv." -}}
{{- end -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nInvalid values for the inference-service chart:\n  - %s\n" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}
