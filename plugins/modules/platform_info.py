#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: platform_info
short_description: Classify a Kubernetes cluster as OpenShift, HPE PCAI, Nutanix or vanilla
version_added: "0.1.0"
description:
  - Reads the Kubernetes API only (discovery, CRDs, namespaces, nodes, storage classes,
    CSI drivers, mutating webhooks, the EZUA cluster ConfigMap, the GPU Operator's ClusterPolicies, the cluster DNS
    Service) and reports the platform and the separate facts the remediations are selected by.
  - Precedence is EZUA/PCAI markers, then OpenShift markers, then Nutanix Enterprise AI
    markers, then vanilla. Nutanix storage and Istio are reported as separate facts, because
    they occur on several platforms (OpenShift on Nutanix, Istio on vanilla).
  - Read-only; never changes the cluster. Supports check mode.
author:
  - dataflywheel.blueprint maintainers (@dataflywheel)
requirements:
  - kubernetes >= 24.2.0 (Python client)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  force:
    description:
      - Force the platform instead of detecting it. The detected platform and its signals are
        still returned (RV(platform_info.detected_platform)). Empty or C(auto) detects.
    type: str
    choices: [auto, openshift, pcai, nutanix, vanilla, ""]
    default: auto
"""

EXAMPLES = r"""
- name: Detect the platform
  dataflywheel.blueprint.platform_info:
  register: platform

- name: Show what was detected
  ansible.builtin.debug:
    msg: "{{ platform.platform_info.platform }} (signals: {{ platform.platform_info.signals }})"

- name: Detect with a ServiceAccount token instead of a kubeconfig (what AWX's credential injects)
  dataflywheel.blueprint.platform_info:
    host: https://api.ocp.example.com:6443
    api_key: "{{ automation_sa_token }}"
    ca_cert: /etc/pki/ocp-api-ca.pem
  register: platform

- name: Force the platform (e.g. an air-gapped cluster with trimmed discovery)
  dataflywheel.blueprint.platform_info:
    kubeconfig: /etc/dfw/kubeconfig
    force: openshift
  register: platform
"""

RETURN = r"""
platform_info:
  description: Platform facts.
  returned: success
  type: dict
  contains:
    platform:
      description: The platform the remediations use (forced or detected).
      type: str
      sample: openshift
    detected_platform:
      description: What the API says, even when forced.
      type: str
      sample: openshift
    forced:
      description: Whether O(force) overrode detection.
      type: bool
    signals:
      description: The API markers that decided the platform.
      type: list
      elements: str
      sample: ["api group security.openshift.io", "node label node.openshift.io/os_id"]
    openshift:
      description: C(present), C(version) (ClusterVersion), C(service_mesh) (C(ossm2), C(ossm3) or null).
      type: dict
    pcai:
      description: C(present) and C(cluster_domain) read from ConfigMap C(ezua-system/ezua-cluster-config).
      type: dict
    nutanix_ai:
      description: C(present) (Nutanix Enterprise AI markers) and C(signals).
      type: dict
    nutanix_storage:
      description: C(present), C(storage_classes) with provisioner C(csi.nutanix.com), C(csi_driver).
      type: dict
    istio:
      description: C(present), C(signals), C(injected_namespaces) (label C(istio-injection=enabled) or C(istio.io/rev)).
      type: dict
    kyverno:
      description: Whether the C(kyverno.io) API group is served.
      type: bool
    mutating_admission_policy:
      description: The best served MutatingAdmissionPolicy API version, or null.
      type: str
      sample: admissionregistration.k8s.io/v1beta1
    gpu_nodes:
      description: Nodes with C(nvidia.com/gpu) capacity or a GPU-present label (C(name), C(gpus)).
      type: list
      elements: dict
    storage_classes:
      description: Every StorageClass (C(name), C(provisioner), C(default), C(parameters)).
      type: list
      elements: dict
    operators:
      description: C(gpu_operator), C(nim_operator), C(nemo_operator), C(volcano), C(kyverno), C(olm) booleans.
      type: dict
    server_version:
      description: Kubernetes server C(major.minor).
      type: str
      sample: "1.34"
    native_sidecars:
      description: Server is 1.29 or newer (SidecarContainers on by default).
      type: bool
    namespaces:
      description: The names of the cluster's namespaces, sorted (read anyway for the Istio and PCAI markers).
      type: list
      elements: str
      sample: ["default", "kube-system", "nemo"]
    crds_established:
      description:
        - The names of the CustomResourceDefinitions whose condition C(Established) is C(True), sorted.
        - The operator roles compare them with the CRDs they wait for, so a run that changes no release reads them once.
      type: list
      elements: str
      sample: ["nimcaches.apps.nvidia.com", "nimservices.apps.nvidia.com"]
    gpu_cluster_policies:
      description:
        - The GPU Operator's ClusterPolicies (C(nvidia.com/v1)) by name, each with its C(status.state) (empty when it
          reports none); empty when the CRD is not served; null when these credentials may not list them.
      type: dict
      sample: {"cluster-policy": "ready"}
    dns_services:
      description:
        - The cluster DNS Services found where distributions keep them (C(kube-system/kube-dns), then
          C(openshift-dns/dns-default)), each reduced to C(metadata.namespace), C(metadata.name) and C(spec.clusterIP).
        - The NeMo gateway's resolver uses the first place's ClusterIP without a read of its own.
      type: list
      elements: dict
      sample: [{"metadata": {"namespace": "kube-system", "name": "kube-dns"}, "spec": {"clusterIP": "10.96.0.10"}}]
"""

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.k8s_connection import k8s_module
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.platform import PLATFORMS, run_module


def main():
    module = k8s_module(
        argument_spec=dict(force=dict(type="str", default="auto", choices=["auto"] + list(PLATFORMS) + [""])),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
