/* SPDX-License-Identifier: MIT */
/* The Kubernetes resources the metrics APIs name most, with their kind, apiVersion and scope:
 * the custom metrics API writes describedObject from them, discovery marks them namespaced or
 * not, and the config checks which metrics are asked for at the root. */
#include "scalemetrics/resource-kind.h"

#include <string.h>

static const struct sm_resource_kind kinds[] = {
    {"apiservices.apiregistration.k8s.io", "APIService", "apiregistration.k8s.io/v1", false},
    {"certificatesigningrequests.certificates.k8s.io", "CertificateSigningRequest",
     "certificates.k8s.io/v1", false},
    {"clusterrolebindings.rbac.authorization.k8s.io", "ClusterRoleBinding",
     "rbac.authorization.k8s.io/v1", false},
    {"clusterroles.rbac.authorization.k8s.io", "ClusterRole", "rbac.authorization.k8s.io/v1",
     false},
    {"componentstatuses", "ComponentStatus", "v1", false},
    {"configmaps", "ConfigMap", "v1", true},
    {"cronjobs.batch", "CronJob", "batch/v1", true},
    {"csidrivers.storage.k8s.io", "CSIDriver", "storage.k8s.io/v1", false},
    {"csinodes.storage.k8s.io", "CSINode", "storage.k8s.io/v1", false},
    {"customresourcedefinitions.apiextensions.k8s.io", "CustomResourceDefinition",
     "apiextensions.k8s.io/v1", false},
    {"daemonsets.apps", "DaemonSet", "apps/v1", true},
    {"deployments.apps", "Deployment", "apps/v1", true},
    {"endpoints", "Endpoints", "v1", true},
    {"horizontalpodautoscalers.autoscaling", "HorizontalPodAutoscaler", "autoscaling/v2", true},
    {"ingressclasses.networking.k8s.io", "IngressClass", "networking.k8s.io/v1", false},
    {"ingresses.networking.k8s.io", "Ingress", "networking.k8s.io/v1", true},
    {"jobs.batch", "Job", "batch/v1", true},
    {"mutatingwebhookconfigurations.admissionregistration.k8s.io", "MutatingWebhookConfiguration",
     "admissionregistration.k8s.io/v1", false},
    {"namespaces", "Namespace", "v1", false},
    {"nodes", "Node", "v1", false},
    {"persistentvolumeclaims", "PersistentVolumeClaim", "v1", true},
    {"persistentvolumes", "PersistentVolume", "v1", false},
    {"poddisruptionbudgets.policy", "PodDisruptionBudget", "policy/v1", true},
    {"pods", "Pod", "v1", true},
    {"priorityclasses.scheduling.k8s.io", "PriorityClass", "scheduling.k8s.io/v1", false},
    {"replicasets.apps", "ReplicaSet", "apps/v1", true},
    {"replicationcontrollers", "ReplicationController", "v1", true},
    {"runtimeclasses.node.k8s.io", "RuntimeClass", "node.k8s.io/v1", false},
    {"scaledobjects.keda.sh", "ScaledObject", "keda.sh/v1alpha1", true},
    {"secrets", "Secret", "v1", true},
    {"serviceaccounts", "ServiceAccount", "v1", true},
    {"services", "Service", "v1", true},
    {"statefulsets.apps", "StatefulSet", "apps/v1", true},
    {"storageclasses.storage.k8s.io", "StorageClass", "storage.k8s.io/v1", false},
    {"validatingwebhookconfigurations.admissionregistration.k8s.io",
     "ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1", false},
    {"volumeattachments.storage.k8s.io", "VolumeAttachment", "storage.k8s.io/v1", false},
};

const struct sm_resource_kind *sm_resource_kind_find(const char *resource)
{
	if (!resource)
		return NULL;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].resource, resource) == 0)
			return &kinds[i];
	return NULL;
}

bool sm_resource_is_namespaced(const char *resource)
{
	const struct sm_resource_kind *k = sm_resource_kind_find(resource);

	return k ? k->namespaced : true;
}
