{{/*
The prefix of every object's name: the release name, followed by -whisperer unless it already
says whisperer. Installed as `helm install whisperer`, the objects are whisperer,
whisperer-leader-election, whisperer-metrics-reader and so on.
*/}}
{{- define "whisperer.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
The labels that select the operator's pods. app.kubernetes.io/name is always whisperer: the
ServiceMonitor makes it the job label, which the alerts select (job="whisperer").
*/}}
{{- define "whisperer.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "whisperer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "whisperer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "whisperer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "whisperer.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false: the ServiceAccount the operator runs as, which the chart binds its roles to" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
whisperer.rules renders the rules of a Role or ClusterRole that config/rbac defines, from the copy
make chart keeps in files/rbac/ (argument: list of the root context and the file's name).
*/}}
{{- define "whisperer.rules" -}}
{{- $root := index . 0 -}}
{{- $role := $root.Files.Get (printf "files/rbac/%s" (index . 1)) | fromYaml -}}
{{- if not $role.rules -}}
{{- fail (printf "files/rbac/%s has no rules: run make chart" (index . 1)) -}}
{{- end -}}
{{- toYaml $role.rules -}}
{{- end -}}

{{/*
whisperer.resources maps the features values to the resources of the operator's --resources flag,
which are also the resources of the generated ClusterRole (files/rbac/role.yaml) that each feature
alone uses, and renders them as YAML: on, in the flag's order, and off. It fails on the values the
operator would refuse at start, so that helm install says why instead of leaving pods that crash.
*/}}
{{- define "whisperer.resources" -}}
{{- $f := required "features is null: set features.mirrorSecrets, features.mirrorConfigMaps and features.attachPullSecrets" .Values.features -}}
{{- if not (or $f.mirrorSecrets $f.mirrorConfigMaps) -}}
{{- fail "features.mirrorSecrets and features.mirrorConfigMaps are both false: whisperer would have nothing to mirror; set one of them to true" -}}
{{- end -}}
{{- if and $f.attachPullSecrets (not $f.mirrorSecrets) -}}
{{- fail "features.attachPullSecrets needs features.mirrorSecrets: it attaches mirrored Secrets to ServiceAccounts; set attachPullSecrets to false too" -}}
{{- end -}}
{{- $on := list -}}
{{- $off := list -}}
{{- range list (list "secrets" $f.mirrorSecrets) (list "configmaps" $f.mirrorConfigMaps) (list "serviceaccounts" $f.attachPullSecrets) -}}
{{- if index . 1 -}}
{{- $on = append $on (index . 0) -}}
{{- else -}}
{{- $off = append $off (index . 0) -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "on" $on "off" $off) -}}
{{- end -}}

{{/*
whisperer.resourcesOff lists, as YAML, the resources of the generated ClusterRole
(files/rbac/role.yaml) that no enabled feature uses: those whisperer.resources has off. The chart
grants every resource of that role except these, so with every feature on it grants exactly
config/rbac/role.yaml. A new feature that can be switched off adds its resource to
whisperer.resources.
*/}}
{{- define "whisperer.resourcesOff" -}}
{{- (include "whisperer.resources" . | fromYaml).off | toYaml -}}
{{- end -}}

{{/*
whisperer.managerRules renders the rules of files/rbac/role.yaml without the resources that
whisperer.resourcesOff lists: a rule keeps its other resources, and goes when none is left.
*/}}
{{- define "whisperer.managerRules" -}}
{{- $off := include "whisperer.resourcesOff" . | fromYamlArray -}}
{{- $rules := list -}}
{{- range (include "whisperer.rules" (list . "role.yaml") | fromYamlArray) -}}
{{- $resources := list -}}
{{- range .resources -}}
{{- if not (has . $off) -}}
{{- $resources = append $resources . -}}
{{- end -}}
{{- end -}}
{{- if $resources -}}
{{- $rules = append $rules (set (deepCopy .) "resources" $resources) -}}
{{- end -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}

{{/* whisperer.policyArg renders one policy flag when its value is set (arguments: flag, value). */}}
{{- define "whisperer.policyArg" -}}
{{- $value := index . 1 -}}
{{- if kindIs "slice" $value -}}
{{- $value = join "," $value -}}
{{- else if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) -}}
{{- /* Helm reads numbers as float64, which would print 1e+06. */ -}}
{{- $value = $value | int64 | toString -}}
{{- end -}}
{{- if not (kindIs "invalid" $value) }}
- {{ printf "--%s=%s" (index . 0) $value | quote }}
{{- end -}}
{{- end -}}
