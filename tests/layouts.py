"""Flux and Argo CD layouts for tests of image automation (pins, freezes): checkout's and payments'
deployments with Flux image setter markers, their image policies, checkout's Kustomization, an Argo CD
Application (plain, and with automated sync) with an image-updater annotation, and an ApplicationSet
that generates every app."""

from __future__ import annotations

CHECKOUT = ('apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: checkout\nspec:\n  template:\n'
            '    spec:\n      containers:\n      - name: checkout\n'
            '        image: registry.example.com/checkout:1.2.3 # {"$imagepolicy": "flux-system:checkout"}\n')
PAYMENTS = CHECKOUT.replace("checkout", "payments")
IMAGES = """apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata:
  name: checkout
  namespace: flux-system
spec:
  image: registry.example.com/checkout
  interval: 1m
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata:
  name: checkout
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: checkout
  policy:
    semver:
      range: 1.x
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata:
  name: payments
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: {repo}
"""
KUSTOMIZATION = """apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: checkout
  namespace: flux-system
spec:
  interval: 5m
  path: ./apps/checkout
"""
ARGO_APP = """apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: checkout
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: app=registry.example.com/checkout:~1
    argocd-image-updater.argoproj.io/write-back-method: git
spec:
  project: default
"""
APPLICATION = ARGO_APP + """  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
    - CreateNamespace=true
"""
APPSET = """apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: apps
spec:
  generators:
  - git:
      directories:
      - path: apps/*
  template:
    metadata:
      name: '{{path.basename}}'
    spec:
      project: default
"""


def flux_files(shared: bool) -> dict[str, str]:
    return {"apps/checkout/deploy.yaml": CHECKOUT, "apps/payments/deploy.yaml": PAYMENTS,
            "clusters/prod/images.yaml": IMAGES.format(repo="checkout" if shared else "payments"),
            "clusters/prod/checkout.yaml": KUSTOMIZATION}
