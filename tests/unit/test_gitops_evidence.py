"""Which controller objects and application repositories speak for a service: an object's path
that holds the service's paths, an image an application repository builds. Pure."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.domain.gitops import path_holds
from bot.domain.playbooks import PlaybookRepo, image_name


def test_an_objects_path_holds_the_service_paths_inside_it() -> None:
    """`apps` and `./apps/checkout` hold apps/checkout/**; `infrastructure` and `apps/cart` do not;
    the root holds everything."""
    globs = ["apps/checkout/**", "clusters/prod/checkout.yaml"]
    assert path_holds("apps", globs)
    assert path_holds("./apps/checkout/", globs)
    assert path_holds(".", globs)
    assert not path_holds("infrastructure", globs)
    assert not path_holds("apps/cart", globs)
    assert not path_holds("apps/check", globs)


def test_image_names_compare_as_docker_resolves_them() -> None:
    """Docker Hub's implicit registry and library, a tag or a digest do not make another image."""
    assert image_name("redis") == image_name("docker.io/library/redis:7.2") == "redis"
    assert image_name("ghcr.io/acme/checkout@sha256:" + "a" * 64) == "ghcr.io/acme/checkout"
    assert image_name("registry:5000/acme/checkout:1.2") == "registry:5000/acme/checkout"


def test_an_application_repository_builds_the_images_it_names_or_its_own_name() -> None:
    """With `images`, only those; without, an image named as the service or a part of the repo."""
    named = PlaybookRepo(repo="shop", role="app", images=("ghcr.io/acme/storefront",))  # type: ignore[arg-type]
    assert named.builds("ghcr.io/acme/storefront", service="checkout")
    assert not named.builds("redis", service="checkout")
    unnamed = PlaybookRepo(repo="checkout-app", role="app")  # type: ignore[arg-type]
    assert unnamed.builds("registry.example.com/checkout", service="checkout")
    assert not unnamed.builds("docker.io/library/redis", service="checkout")


def test_images_belong_to_application_repositories_only() -> None:
    """A GitOps repository builds nothing: `images` there is refused, saying what to do."""
    with pytest.raises(ValidationError, match="set `role: app`"):
        PlaybookRepo(repo="gitops", images=("redis",))
    with pytest.raises(ValidationError):
        PlaybookRepo(repo="app", role="app", images=("redis:7.2 ",))  # type: ignore[arg-type]
