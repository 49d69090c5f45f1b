{{/* Chart name. */}}
{{- define "warren.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix of every object. */}}
{{- define "warren.fullname" -}}
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

{{- define "warren.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" $ "component" "broker"). */}}
{{- define "warren.selectorLabels" -}}
app.kubernetes.io/name: {{ include "warren.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Standard labels; call with (dict "ctx" $ "component" "broker"). */}}
{{- define "warren.labels" -}}
{{ include "warren.selectorLabels" . }}
helm.sh/chart: {{ include "warren.chart" .ctx }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: warren
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Object names. */}}
{{- define "warren.broker.fullname" -}}
{{- printf "%s-rabbitmq" (include "warren.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- define "warren.broker.headless" -}}
{{- printf "%s-headless" (include "warren.broker.fullname" .) -}}
{{- end -}}
{{- define "warren.lb.fullname" -}}
{{- printf "%s-lb" (include "warren.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "warren.vip.fullname" -}}
{{- printf "%s-vip" (include "warren.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "warren.secretName" -}}
{{- if .Values.broker.existingSecret -}}
{{- .Values.broker.existingSecret -}}
{{- else -}}
{{- printf "%s-secret" (include "warren.broker.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Stable DNS name of broker pod N: <sts>-N.<headless>.<ns>.svc.<domain> */}}
{{- define "warren.broker.podDNS" -}}
{{- $ctx := .ctx -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "warren.broker.fullname" $ctx) (int .index) (include "warren.broker.headless" $ctx) $ctx.Release.Namespace $ctx.Values.clusterDomain -}}
{{- end -}}

{{/* image reference; call with (dict "image" .Values.x.image "what" "broker.image") */}}
{{- define "warren.image" -}}
{{- if not .image.tag -}}
{{- fail (printf "%s.tag is empty: set an explicit image tag (e.g. --set %s.tag=...); warren never deploys an implicit 'latest'" .what .what) -}}
{{- end -}}
{{- printf "%s:%s" .image.repository (toString .image.tag) -}}
{{- end -}}

{{/*
RabbitMQ line of the broker image, read from broker.image.tag ("4.0.5" and
"v4.0-management" -> "4.0"; "" when the tag does not start with MAJOR.MINOR).
The tag is the only version the chart gets, as with the RabbitMQ cluster
operator (spec.image, no version field): a second setting could disagree with
the image actually deployed.
*/}}
{{- define "warren.broker.line" -}}
{{- regexFind "^v?[0-9]+\\.[0-9]+" (toString .Values.broker.image.tag) | trimPrefix "v" -}}
{{- end -}}

{{/* Lines the chart knows (warren.validate refuses any other). 4.2 makes Khepri the
default for new clusters and 4.3 mandatory, so broker.khepri cannot mean there what
it means here. */}}
{{- define "warren.broker.lines" -}}3.13 4.0 4.1{{- end -}}

{{/* Major version of the broker line ("4.0" -> 4), 0 if the tag names none. */}}
{{- define "warren.broker.major" -}}
{{- $line := include "warren.broker.line" . -}}
{{- if $line -}}{{ index (splitList "." $line) 0 }}{{- else -}}0{{- end -}}
{{- end -}}

{{/*
Value checks that a JSON schema cannot express with a clear message. Included by every
template that renders a workload, so `helm lint`, `helm template` and `helm install`
all stop with the same reason.
*/}}
{{- define "warren.validate" -}}
{{- $v := .Values -}}
{{- if not (has $v.mode (list "mirrored" "quorum")) -}}
{{- fail (printf "mode must be \"mirrored\" or \"quorum\" (got %q)" (toString $v.mode)) -}}
{{- end -}}
{{- $replicas := int $v.broker.replicas -}}
{{- if or (lt $replicas 1) (eq (mod $replicas 2) 0) -}}
{{- fail (printf "broker.replicas must be an odd number >= 1 (got %d): an even cluster cannot keep a strict majority after losing half of its nodes, so pause_minority and quorum queues would stop it; use 3 or 5" $replicas) -}}
{{- end -}}
{{- $_ := include "warren.image" (dict "image" $v.broker.image "what" "broker.image") -}}
{{- $line := include "warren.broker.line" . -}}
{{- $lines := splitList " " (include "warren.broker.lines" .) -}}
{{- if not (has $line $lines) -}}
{{- fail (printf "broker.image.tag %q does not name a RabbitMQ line this chart supports (supported: %s; the tag must start with MAJOR.MINOR, e.g. 4.0.5 or 4.0-management): the chart reads the broker version from the tag" (toString $v.broker.image.tag) (join ", " $lines)) -}}
{{- end -}}
{{- $major := int (include "warren.broker.major" .) -}}
{{- if and (eq $v.mode "mirrored") (ge $major 4) -}}
{{- fail (printf "mode=mirrored needs a RabbitMQ 3.13 broker image, but broker.image.tag is %q: classic queue mirroring was removed in RabbitMQ 4.0. Use mode=quorum with 4.x (the only mode 4.x supports), or a 3.13 tag (see docs/helm.md, upgrade path)" (toString $v.broker.image.tag)) -}}
{{- end -}}
{{- if and $v.broker.khepri.enabled (lt $major 4) -}}
{{- fail (printf "broker.khepri.enabled=true needs a RabbitMQ 4.x broker image, but broker.image.tag is %q: Khepri on 3.13 is experimental, unsupported, and blocks the upgrade to 4.x (set broker.khepri.enabled=false, or use a 4.0/4.1 tag with mode=quorum)" (toString $v.broker.image.tag)) -}}
{{- end -}}
{{- if $v.lb.enabled -}}
{{- $_ := include "warren.image" (dict "image" $v.lb.image "what" "lb.image") -}}
{{- end -}}
{{- if $v.vip.enabled -}}
{{- $_ := include "warren.image" (dict "image" $v.vip.image "what" "vip.image") -}}
{{- if not $v.lb.enabled -}}
{{- fail "vip.enabled=true needs lb.enabled=true: the VIP fronts the warren-lb Service" -}}
{{- end -}}
{{- if not $v.vip.virtualIPs -}}
{{- fail "vip.enabled=true needs at least one address in vip.virtualIPs (e.g. --set vip.virtualIPs={192.0.2.10/24})" -}}
{{- end -}}
{{- end -}}
{{- if and $v.tests.enabled $v.lb.enabled -}}
{{- $_ := include "warren.image" (dict "image" $v.tests.image "what" "tests.image") -}}
{{- end -}}
{{- include "warren.tls.validate" . -}}
{{- end -}}

{{/*
TLS values: one source of certificates, named once. The certificate files come either
from a cert-manager Certificate the chart creates or from a Secret the user manages;
two sources would leave it unclear which certificate the brokers present.
*/}}
{{- define "warren.tls.validate" -}}
{{- $t := .Values.tls -}}
{{- $issuer := $t.certManager.issuerRef | default dict -}}
{{- if $t.enabled -}}
{{- if and $issuer $t.existingSecret -}}
{{- fail (printf "tls: both tls.certManager.issuerRef (%s) and tls.existingSecret (%q) are set: the brokers' certificate must come from exactly one of them (unset one)" (toJson $issuer) $t.existingSecret) -}}
{{- end -}}
{{- if not (or $issuer $t.existingSecret) -}}
{{- fail "tls.enabled=true needs the brokers' certificate from exactly one of: tls.certManager.issuerRef (a cert-manager Issuer/ClusterIssuer, e.g. --set tls.certManager.issuerRef.name=my-ca) or tls.existingSecret (a Secret with tls.crt, tls.key and ca.crt)" -}}
{{- end -}}
{{- if and $issuer (not $issuer.name) -}}
{{- fail (printf "tls.certManager.issuerRef needs a name (got %s): the cert-manager Issuer or ClusterIssuer that signs the brokers' certificate" (toJson $issuer)) -}}
{{- end -}}
{{- else if $t.only -}}
{{- fail "tls.only=true needs tls.enabled=true: closing the plain listeners without TLS ones would leave no listener" -}}
{{- end -}}
{{- end -}}

{{/* Secret holding tls.crt, tls.key and ca.crt. */}}
{{- define "warren.tls.secretName" -}}
{{- if .Values.tls.existingSecret -}}
{{- .Values.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "warren.broker.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Where the TLS Secret is mounted (a directory, never subPath: the kubelet only
updates whole-volume mounts when the Secret changes). */}}
{{- define "warren.tls.dir" -}}/etc/warren/tls{{- end -}}

{{/* Anti-affinity block; call with (dict "ctx" $ "component" "broker" "mode" "hard" "topologyKey" "...") */}}
{{- define "warren.antiAffinity" -}}
{{- if eq .mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: {{ .topologyKey }}
      labelSelector:
        matchLabels:
          {{- include "warren.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 10 }}
{{- else if eq .mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: {{ .topologyKey }}
        labelSelector:
          matchLabels:
            {{- include "warren.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end }}
{{- end -}}

{{/* Restricted container securityContext. */}}
{{- define "warren.containerSecurityContext" -}}
allowPrivilegeEscalation: false
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Kubernetes quantity ("2Gi", "512Mi", "1G", "1073741824") to bytes. */}}
{{- define "warren.bytes" -}}
{{- $s := toString . -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $s | float64 -}}
{{- $unit := regexReplaceAll "^[0-9]+(\\.[0-9]+)?" $s "" -}}
{{- $mult := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- if not (hasKey $mult $unit) -}}
{{- fail (printf "cannot read the memory quantity %q (use e.g. 2Gi, 512Mi, 2G)" $s) -}}
{{- end -}}
{{- mulf $num (get $mult $unit) | int64 -}}
{{- end -}}


{{/*
NetworkPolicy port entries for one service of the brokers: its plain port unless
tls.only, its TLS port with tls.enabled. Call with (dict "ctx" $ "plain" 5672 "tls" 5671).
*/}}
{{- define "warren.np.ports" -}}
{{- $t := .ctx.Values.tls -}}
{{- if not $t.only }}
- protocol: TCP
  port: {{ .plain }}
{{- end }}
{{- if $t.enabled }}
- protocol: TCP
  port: {{ .tls }}
{{- end }}
{{- end -}}
