{{/* The chart's name, overridable. */}}
{{- define "dce.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name: <release>-<name>, or the release name when it holds the name. */}}
{{- define "dce.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "dce.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "dce.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dce.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dce.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "dce.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: datadog-cnm-exporter
{{- end -}}

{{- define "dce.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dce.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dce.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the chart makes the Secret from datadog.apiKey/appKey. */}}
{{- define "dce.createSecret" -}}
{{- $d := .Values.datadog -}}
{{- if and $d.existingSecret (or $d.apiKey $d.appKey) -}}
{{- fail "datadog: give either existingSecret or apiKey and appKey, not both" -}}
{{- end -}}
{{- if and (or $d.apiKey $d.appKey) (not (and $d.apiKey $d.appKey)) -}}
{{- fail "datadog: apiKey and appKey go together (both keys, or datadog.existingSecret)" -}}
{{- end -}}
{{- if and $d.apiKey $d.appKey }}true{{ end -}}
{{- end -}}

{{/* True when no keys were given in any form: the workload waits for <fullname>-keys. */}}
{{- define "dce.noKeys" -}}
{{- if not (or .Values.datadog.existingSecret (include "dce.createSecret" .)) }}true{{ end -}}
{{- end -}}

{{- define "dce.secretName" -}}
{{- default (printf "%s-keys" (include "dce.fullname" .)) .Values.datadog.existingSecret -}}
{{- end -}}

{{- define "dce.configMapName" -}}
{{- default (printf "%s-config" (include "dce.fullname" .)) .Values.existingConfigMap -}}
{{- end -}}

{{/* The exporter's configuration as YAML; datadog.site and config.datadog.site must agree. */}}
{{- define "dce.config" -}}
{{- $site := "" -}}
{{- $given := .Values.config | default dict -}}
{{- if and (hasKey $given "datadog") (kindIs "map" $given.datadog) -}}
{{- $site = get $given.datadog "site" | default "" -}}
{{- end -}}
{{- if and $site .Values.datadog.site (ne (toString $site) .Values.datadog.site) -}}
{{- fail (printf "datadog.site (%s) and config.datadog.site (%s) differ: set one" .Values.datadog.site $site) -}}
{{- end -}}
{{- include "dce.effectiveConfig" . -}}
{{- end -}}

{{/* .Values.config, or the shipped queries (files/config.yml, its site left to datadog.site)
under .Values.config's settings when it names no query section: every key but datadog is
one, the schema allows no other. A `config:` left empty in YAML is null: the same. */}}
{{- define "dce.effectiveConfig" -}}
{{- $config := deepCopy (.Values.config | default dict) -}}
{{- if not (omit $config "datadog") -}}
{{- $shipped := .Files.Get "files/config.yml" | fromYaml -}}
{{- $_ := unset (get $shipped "datadog" | default dict) "site" -}}
{{- $config = mergeOverwrite $shipped $config -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "dce.scheme" -}}
{{- if .Values.web.tls }}https{{ else }}http{{ end -}}
{{- end -}}

{{/* The pod template, shared by the Deployment (shards: 1) and the StatefulSet. */}}
{{- define "dce.podTemplate" -}}
metadata:
  labels:
    {{- include "dce.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if not .Values.existingConfigMap }}
    checksum/config: {{ include "dce.config" . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "dce.serviceAccountName" . }}
  automountServiceAccountToken: false  # it never talks to the Kubernetes API
  enableServiceLinks: false
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: datadog-cnm-exporter
      image: {{ include "dce.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config.file=/etc/datadog-cnm-exporter/config.yml
        - --log.format={{ .Values.log.format }}
        - --log.level={{ .Values.log.level }}
        {{- if .Values.web.existingSecret }}
        - --web.config.file=/etc/datadog-cnm-exporter-web/web-config.yml
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: DD_API_KEY_FILE
          value: /var/run/secrets/datadog/api-key
        - name: DD_APP_KEY_FILE
          value: /var/run/secrets/datadog/app-key
        {{- with .Values.datadog.site }}
        - name: DD_SITE
          value: {{ . | quote }}
        {{- end }}
        {{- if gt (int .Values.shards) 1 }}
        - name: EXPORTER_SHARD_COUNT
          value: {{ .Values.shards | quote }}
        - name: EXPORTER_SHARD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        # Clusters before 1.28 lack the pod-index label: the exporter then reads the
        # ordinal at the end of the pod name.
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http-metrics
          containerPort: 10173
          protocol: TCP
      startupProbe:
        httpGet:
          path: /-/healthy
          port: http-metrics
          scheme: {{ include "dce.scheme" . | upper }}
        periodSeconds: 2
        failureThreshold: 30
      livenessProbe:
        httpGet:
          path: /-/healthy
          port: http-metrics
          scheme: {{ include "dce.scheme" . | upper }}
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /-/ready
          port: http-metrics
          scheme: {{ include "dce.scheme" . | upper }}
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/datadog-cnm-exporter
          readOnly: true
        - name: keys
          mountPath: /var/run/secrets/datadog
          readOnly: true
        {{- if .Values.web.existingSecret }}
        - name: web
          mountPath: /etc/datadog-cnm-exporter-web
          readOnly: true
        {{- end }}
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "dce.configMapName" . }}
    - name: keys
      secret:
        secretName: {{ include "dce.secretName" . }}
        # A directory (never subPath), so a rotated Secret reaches the files; the
        # exporter re-reads them. Readable by the pod's fsGroup only.
        defaultMode: 0440
    {{- with .Values.web.existingSecret }}
    - name: web
      secret:
        secretName: {{ . }}
        defaultMode: 0440
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
