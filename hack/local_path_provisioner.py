"""A local-path provisioner for the test cluster's real node (started by hack/real-node.sh).

PersistentVolumeClaims of a StorageClass whose provisioner is ``helm-mlops.dev/local-path``
(``local-path``, ``WaitForFirstConsumer``) get a directory under ``--root`` on this machine and a
hostPath PersistentVolume pinned to the real node, once the scheduler picked that node for the
claim's first pod. Released volumes of reclaim policy Delete are removed with their directory.

Why our own rather than rancher's local-path-provisioner: that one creates and deletes directories
through helper pods (a busybox image we would have to build) and runs in-cluster; the real node is
this machine, so the directory is made here, in-process, and the whole thing is one small loop.
Directories are mode 0777 like rancher's, since hostPath volumes do not get the pod's fsGroup.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROVISIONER = "helm-mlops.dev/local-path"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"

log = logging.getLogger("local-path")


class Provisioner:
    def __init__(self, core: Any, storage: Any, node: str, root: Path) -> None:
        self.core = core
        self.storage = storage
        self.node = node
        self.root = root

    def classes(self) -> dict[str, str]:
        """Our StorageClasses: name -> reclaim policy."""
        return {
            sc.metadata.name: sc.reclaim_policy or "Delete"
            for sc in self.storage.list_storage_class().items
            if sc.provisioner == PROVISIONER
        }

    def provision(self, pvc: Any, reclaim: str) -> None:
        from kubernetes import client

        name = f"pvc-{pvc.metadata.uid}"
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        pv = client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=name, annotations={PROVISIONED_BY: PROVISIONER}),
            spec=client.V1PersistentVolumeSpec(
                access_modes=pvc.spec.access_modes,
                capacity={"storage": pvc.spec.resources.requests.get("storage", "1Gi")},
                persistent_volume_reclaim_policy=reclaim,
                storage_class_name=pvc.spec.storage_class_name,
                volume_mode=pvc.spec.volume_mode or "Filesystem",
                host_path=client.V1HostPathVolumeSource(path=str(path), type="Directory"),
                claim_ref=client.V1ObjectReference(
                    api_version="v1",
                    kind="PersistentVolumeClaim",
                    namespace=pvc.metadata.namespace,
                    name=pvc.metadata.name,
                    uid=pvc.metadata.uid,
                ),
                node_affinity=client.V1VolumeNodeAffinity(
                    required=client.V1NodeSelector(
                        node_selector_terms=[
                            client.V1NodeSelectorTerm(
                                match_expressions=[
                                    client.V1NodeSelectorRequirement(
                                        key="kubernetes.io/hostname", operator="In", values=[self.node]
                                    )
                                ]
                            )
                        ]
                    )
                ),
            ),
        )
        try:
            self.core.create_persistent_volume(pv)
        except client.ApiException as e:
            if e.status != 409:
                raise
            return
        log.info("provisioned %s for %s/%s at %s", name, pvc.metadata.namespace, pvc.metadata.name, path)

    def reconcile(self) -> None:
        classes = self.classes()
        pvs = self.core.list_persistent_volume().items
        existing = {pv.metadata.name for pv in pvs}
        for pvc in self.core.list_persistent_volume_claim_for_all_namespaces().items:
            reclaim = classes.get(pvc.spec.storage_class_name or "")
            annotations = pvc.metadata.annotations or {}
            if (
                reclaim is None
                or pvc.spec.volume_name
                or pvc.metadata.deletion_timestamp
                or annotations.get(SELECTED_NODE) != self.node
                or f"pvc-{pvc.metadata.uid}" in existing
            ):
                continue
            self.provision(pvc, reclaim)
        for pv in pvs:
            annotations = pv.metadata.annotations or {}
            if (
                annotations.get(PROVISIONED_BY) == PROVISIONER
                and pv.status.phase == "Released"
                and pv.spec.persistent_volume_reclaim_policy == "Delete"
            ):
                shutil.rmtree(self.root / pv.metadata.name, ignore_errors=True)
                self.core.delete_persistent_volume(pv.metadata.name)
                log.info("deleted %s", pv.metadata.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between passes with no change")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    from kubernetes import client, config
    from kubernetes import watch as watch_module

    config.load_kube_config(config_file=args.kubeconfig)
    core = client.CoreV1Api()
    provisioner = Provisioner(core, client.StorageV1Api(), args.node, args.root)
    changed = threading.Event()

    def watch(list_fn: Any) -> None:
        # Any change of a claim or a volume wakes the loop; the stream is reopened when it ends.
        while True:
            try:
                for _ in watch_module.Watch().stream(list_fn, timeout_seconds=300):
                    changed.set()
            except Exception as e:  # reconnect after a pause
                log.warning("watch failed: %s", e)
                time.sleep(2)

    for list_fn in (core.list_persistent_volume_claim_for_all_namespaces, core.list_persistent_volume):
        threading.Thread(target=watch, args=(list_fn,), daemon=True).start()
    while True:
        changed.clear()
        try:
            provisioner.reconcile()
        except Exception as e:  # keep serving; the next pass retries
            log.warning("pass failed: %s", e)
        changed.wait(args.interval)


if __name__ == "__main__":
    raise SystemExit(main())
