{{/* Name of the chart, or nameOverride. */}}
{{- define "llmroute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: the release name when it already contains the chart name, else
"<release>-<chart>"; fullnameOverride wins. */}}
{{- define "llmroute.fullname" -}}
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

{{- define "llmroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The immutable subset that selects the controller pods (a Deployment's selector cannot change). */}}
{{- define "llmroute.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmroute.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Kubernetes' recommended labels, on every object the chart creates. */}}
{{- define "llmroute.labels" -}}
{{ include "llmroute.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: llmroute
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "llmroute.chart" . }}
{{- end }}

{{- define "llmroute.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llmroute.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "llmroute.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/* The controller's image: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "llmroute.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The gateways' image: gatewayImage, or the controller's own image. */}}
{{- define "llmroute.gatewayImage" -}}
{{- default (include "llmroute.image" .) .Values.gatewayImage }}
{{- end }}

{{/*
The rules the controller needs wherever it reconciles LLMRoutes: in a ClusterRole when watchNamespaces is empty, in a
Role per watched namespace otherwise. Each verb is explained in README.md ("RBAC"); test/charts/chart.test.ts compares
them to a table, so adding a verb is a deliberate change.
*/}}
{{- define "llmroute.reconcileRules" -}}
# Watch LLMRoutes (an informer lists, then watches; get re-reads one before reconciling).
- apiGroups: ["llmroute.dev"]
  resources: ["llmroutes"]
  verbs: ["get", "list", "watch"]
# Write status (conditions, observedGeneration) only through the /status subresource, as a merge patch.
- apiGroups: ["llmroute.dev"]
  resources: ["llmroutes/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion: true on the objects below require update on the owner's finalizers
# (the OwnerReferencesPermissionEnforcement admission plugin checks it).
- apiGroups: ["llmroute.dev"]
  resources: ["llmroutes/finalizers"]
  verbs: ["update"]
# The objects rendered per environment: server-side apply is a PATCH, and an apply that creates the object is also
# authorized as create; delete prunes objects an environment no longer renders; get/list/watch keep the cache of what
# exists. No update: server-side apply never needs it.
- apiGroups: [""]
  resources: ["configmaps", "services", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["external-secrets.io"]
  resources: ["externalsecrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors", "prometheusrules"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Read the key Secrets a route names, by name, to check they exist and are non-empty and to fingerprint them. Only
# get: without list or watch the controller cannot enumerate or stream the Secrets of a namespace.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Events on LLMRoutes, recorded on transitions only, each as a new object.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
