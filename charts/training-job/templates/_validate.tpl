{{/* Cross-field rules. Each message names the value to change and how. Types, enums and unknown keys
are rejected earlier by values.schema.json. */}}
{{- define "training-job.validate" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- range $url := prepend $v.pip.extraIndexUrls $v.pip.indexUrl -}}
{{- if regexMatch "^[a-z+]+://[^/]*@" $url -}}
{{- $errors = append $errors "pip.indexUrl and pip.extraIndexUrls must not carry credentials (they would sit in the Job in plain text): put the URL in a Secret and set pip.existingSecret (or pip.extraIndexUrlsExistingSecret)." -}}
{{- end -}}
{{- end -}}
{{- $uri := include "training-job.trackingUri" . -}}
{{- if regexMatch "^[a-z+]+://[^/]*@" $uri -}}
{{- $errors = append $errors "mlflow.trackingUri (or global.mlflow.trackingUri) must not carry credentials (they would sit in the Job in plain text): drop user:password@ from the URI, put them in a Secret and set mlflow.existingSecret (keys mlflow.usernameKey and mlflow.passwordKey); the pods get them as MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD." -}}
{{- end -}}
{{- range $i, $req := $v.requirements -}}
{{- if regexMatch "[\\x00-\\x1f\\x7f]" $req -}}
{{- $errors = append $errors (printf "requirements[%d] contains a control character (a newline?): give one requirement specifier per list item." $i) -}}
{{- else if hasPrefix "-" (trim $req) -}}
{{- $errors = append $errors (printf "requirements[%d] (%s) is a pip option, not a requirement: set the index with pip.indexUrl or pip.existingSecret, other pip options with pip.extraArgs." $i (trunc 60 $req)) -}}
{{- end -}}
{{- end -}}
{{- if and (not $v.script.content) (not $v.command) -}}
{{- $errors = append $errors "script.content or command is required: pass the script with --set-file script.content=train.py (or helm-mlops train --script train.py), or set command to run code from your image." -}}
{{- end -}}
{{- if and $v.script.content $v.command -}}
{{- $errors = append $errors "script.content and command are both set: keep one (the script runs with python3; command runs code from your image)." -}}
{{- end -}}
{{- if gt (len $v.script.content) 900000 -}}
{{- $errors = append $errors (printf "script.content is %d bytes, over the 900,000 allowed (it travels in a ConfigMap, which holds at most 1 MiB with the rest). Ship large code in your image (command) or on a volume (volumes)." (len $v.script.content)) -}}
{{- end -}}
{{- $gpus := int $v.gpu.count -}}
{{- if $v.distributed.enabled -}}
{{- if and (gt $gpus 0) (gt (int $v.distributed.nprocPerNode) $gpus) -}}
{{- $errors = append $errors (printf "distributed.nprocPerNode=%d is larger than gpu.count=%d: each process needs its own GPU. Lower distributed.nprocPerNode or raise gpu.count." (int $v.distributed.nprocPerNode) $gpus) -}}
{{- end -}}
{{- if and $v.distributed.elastic.enabled (gt (int $v.distributed.elastic.minNodes) (int $v.distributed.nodes)) -}}
{{- $errors = append $errors "distributed.elastic.minNodes must be <= distributed.nodes." -}}
{{- end -}}
{{- if $v.cronJob.schedule -}}
{{- $errors = append $errors "cronJob.schedule cannot be combined with distributed.enabled=true: schedule a single-pod job, or run distributed training as a one-off release." -}}
{{- end -}}
{{- if $v.sweep.enabled -}}
{{- $errors = append $errors "sweep.enabled and distributed.enabled are both true: a sweep runs one pod per trial. Turn one off." -}}
{{- end -}}
{{- if and (eq $v.distributed.backend "nccl") (eq $gpus 0) -}}
{{- $errors = append $errors "distributed.backend=nccl needs GPUs: set gpu.count, or use distributed.backend=gloo (or auto)." -}}
{{- end -}}
{{- end -}}
{{- if and $v.distributed.enabled (eq $v.distributed.operator "trainjob") (or $v.priorityClassName $v.runtimeClassName $v.topologySpreadConstraints $v.schedulerName $v.initContainers $v.sidecars) -}}
{{- $errors = append $errors "priorityClassName, runtimeClassName, topologySpreadConstraints, schedulerName, initContainers and sidecars cannot be patched into a TrainJob (its runtime patch only amends the runtime's own containers): set them in the TrainingRuntime (distributed.trainJob.runtimeName), or use distributed.operator=none|pytorchjob." -}}
{{- end -}}
{{- if and $v.distributed.enabled (eq $v.distributed.operator "trainjob") $v.envFrom -}}
{{- $errors = append $errors "envFrom cannot be passed to a TrainJob (its trainer takes env only): list the variables in env (valueFrom secretKeyRef/configMapKeyRef), or use distributed.operator=none|pytorchjob." -}}
{{- end -}}
{{- if and $v.job.nonRetriableExitCodes (ne $v.job.restartPolicy "Never") -}}
{{- $errors = append $errors "job.nonRetriableExitCodes needs job.restartPolicy=Never (Kubernetes applies podFailurePolicy only then)." -}}
{{- end -}}
{{- if $v.sweep.enabled -}}
{{- if ne $v.job.restartPolicy "Never" -}}
{{- $errors = append $errors "sweep.enabled needs job.restartPolicy=Never: each trial is retried on its own (sweep.backoffLimitPerIndex)." -}}
{{- end -}}
{{- if and (eq $v.sweep.strategy "grid") (not $v.sweep.parameters) -}}
{{- $errors = append $errors "sweep.parameters is empty: a grid sweep needs at least one parameter." -}}
{{- end -}}
{{- $names := list -}}
{{- range $i, $p := $v.sweep.parameters -}}
{{- if has $p.name $names -}}
{{- $errors = append $errors (printf "sweep.parameters[%d].name=%s appears twice." $i $p.name) -}}
{{- end -}}
{{- $names = append $names $p.name -}}
{{- if and (eq $p.type "categorical") (not $p.values) -}}
{{- $errors = append $errors (printf "sweep.parameters[%d] (%s): a categorical parameter needs values." $i $p.name) -}}
{{- end -}}
{{- if and (ne $p.type "categorical") (not $p.values) -}}
{{- if not (and (hasKey $p "min") (hasKey $p "max")) -}}
{{- $errors = append $errors (printf "sweep.parameters[%d] (%s): set min and max, or values." $i $p.name) -}}
{{- else if lt (float64 $p.max) (float64 $p.min) -}}
{{- $errors = append $errors (printf "sweep.parameters[%d] (%s): max must be >= min." $i $p.name) -}}
{{- else if and (eq (toString $p.scale) "log") (le (float64 $p.min) 0.0) -}}
{{- $errors = append $errors (printf "sweep.parameters[%d] (%s): scale=log needs min > 0." $i $p.name) -}}
{{- end -}}
{{- if and (eq $v.sweep.strategy "grid") (eq $p.type "float") (not $p.count) -}}
{{- $errors = append $errors (printf "sweep.parameters[%d] (%s): a float grid needs count (number of points) or values." $i $p.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $trials := int (include "training-job.trialCount" .) -}}
{{- if and (eq $trials 0) $v.sweep.parameters -}}
{{- $errors = append $errors "sweep: the parameter space has 0 trials. Give every parameter at least one value (sweep.parameters), or raise sweep.trials." -}}
{{- else if and (eq $trials 0) (eq $v.sweep.strategy "random") -}}
{{- $errors = append $errors "sweep.trials=0: a random sweep needs at least 1 trial." -}}
{{- end -}}
{{- if gt $trials 10000 -}}
{{- $errors = append $errors (printf "sweep: %s trials exceed the limit of 10000 (one Indexed Job). Narrow sweep.parameters (fewer values, larger steps) or use strategy=random with fewer sweep.trials." (ternary (toString $v.sweep.trials) "more than 10000" (eq $v.sweep.strategy "random"))) -}}
{{- end -}}
{{- end -}}
{{- range $i, $vol := $v.volumes -}}
{{- $sources := 0 -}}
{{- range $k := list "pvc" "emptyDir" "secret" "configMap" -}}
{{- if hasKey $vol $k }}{{ $sources = add1 $sources }}{{ end -}}
{{- end -}}
{{- if ne $sources 1 -}}
{{- $errors = append $errors (printf "volumes[%d] (%s): set exactly one of pvc, emptyDir, secret or configMap." $i $vol.name) -}}
{{- end -}}
{{- if $vol.pvc -}}
{{- if and $vol.pvc.create (not $vol.pvc.size) -}}
{{- $errors = append $errors (printf "volumes[%d].pvc.size is required with pvc.create=true." $i) -}}
{{- end -}}
{{- if and (not $vol.pvc.create) (not $vol.pvc.claimName) -}}
{{- $errors = append $errors (printf "volumes[%d].pvc: set claimName (an existing claim) or create=true with a size." $i) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $line := splitList "\n" (include "training-job.resourceErrors" (list "resources" (fromYaml (include "training-job.resources" .)))) -}}
{{- if $line }}{{ $errors = append $errors $line }}{{ end -}}
{{- end -}}
{{- range $line := splitList "\n" (include "training-job.resourceErrors" (list "tests.resources" $v.tests.resources)) -}}
{{- if $line }}{{ $errors = append $errors $line }}{{ end -}}
{{- end -}}
{{- with $v.cronJob.schedule -}}
{{- with include "training-job.cronError" (list "cronJob.schedule" . "cronJob.timeZone") -}}
{{- $errors = append $errors . -}}
{{- end -}}
{{- end -}}
{{- with $v.cronJob.timeZone -}}
{{- if or (eq (lower .) "local") (not (regexMatch "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$" .)) -}}
{{- $errors = append $errors (printf "cronJob.timeZone (%q) is not a time zone Kubernetes accepts: give an IANA name such as Europe/Berlin or UTC (Kubernetes refuses \"Local\")." .) -}}
{{- end -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nInvalid values for the training-job chart:\n  - %s\n" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}
