"""Every kernel module that declares ``SETTINGS`` declares it completely and consistently with its own ``init`` /
``step`` signatures, so the engine's generic binder (``engine/kernel_binding.py``) can call it without knowing it."""

import importlib
import inspect
import pkgutil

import pytest

import thermodl.kernels as kernels_pkg
from thermodl.kernels.settings import KINDS, MANIFOLDS, KernelSettings, Option


def _discovered():
    found = {}
    for info in pkgutil.iter_modules(kernels_pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"thermodl.kernels.{info.name}")
        if hasattr(module, "SETTINGS"):
            found[info.name] = module
    return found


KERNEL_MODULES = _discovered()


def test_the_sampling_kernels_are_discovered_and_the_engine_sees_the_same():
    from thermodl.engine.kernel_binding import KERNEL_SETTINGS

    expected = {"rwm", "mala", "hmc", "langevin", "sgld", "sphere", "slice_sphere", "flip_metropolis",
                "heat_bath", "block_gibbs"}
    assert expected <= set(KERNEL_MODULES)
    assert set(KERNEL_SETTINGS) == set(KERNEL_MODULES)
    for name, module in KERNEL_MODULES.items():
        assert KERNEL_SETTINGS[name] is module.SETTINGS


@pytest.mark.parametrize("name", sorted(KERNEL_MODULES))
def test_settings_complete_and_consistent(name):
    module = KERNEL_MODULES[name]
    s = module.SETTINGS
    assert isinstance(s, KernelSettings) and "SETTINGS" in module.__all__
    assert s.kind in KINDS
    assert s.manifold is None or s.manifold in MANIFOLDS
    assert isinstance(s.needs_gradient, bool)
    assert isinstance(s.reference, str) and s.reference.strip()
    assert isinstance(s.energy, str) and s.energy.isidentifier()
    if s.kind == "discrete":
        assert s.manifold is None and s.default_step_size is None and not s.needs_gradient
    else:
        assert s.manifold is not None
    if s.default_step_size is not None:
        assert isinstance(s.default_step_size, float) and s.default_step_size > 0
    if s.target_acceptance is not None:
        assert s.default_step_size is not None, "a target acceptance needs a step size to adapt"
        assert 0.0 < s.target_acceptance < 1.0

    # model arguments: (kernel keyword, model attribute or "attribute()")
    keywords = [kw for kw, _ in s.model_args]
    assert len(set(keywords)) == len(keywords)
    for kw, attr in s.model_args:
        assert kw.isidentifier() and attr.removesuffix("()").isidentifier()

    # options
    names = [o.name for o in s.options]
    assert len(set(names)) == len(names) and not set(names) & set(keywords)
    for o in s.options:
        assert isinstance(o, Option) and o.name.isidentifier() and isinstance(o.static, bool)
        assert isinstance(o.doc, str) and o.doc.strip()
        assert o.validator is None or callable(o.validator)
        if o.default is not None and o.validator is not None:
            o.validator(o.default)  # the default is a valid value
        if o.static:
            hash(o.default)

    # the signatures take what the engine passes, and need nothing else
    step = inspect.signature(module.step).parameters
    passed = {"step_size"} if s.default_step_size is not None else set()
    passed |= set(keywords) | set(names)
    assert list(step)[:4][1] == "state" and list(step)[3] == "beta"
    assert passed <= set(step), passed - set(step)
    assert ("step_size" in step) == (s.default_step_size is not None)
    for p in list(step.values())[4:]:
        assert p.name in passed or p.default is not inspect.Parameter.empty, f"{name}.step needs {p.name}"
    init = inspect.signature(module.init).parameters
    for p in list(init.values())[2:]:
        assert p.name in keywords or p.default is not inspect.Parameter.empty, f"{name}.init needs {p.name}"
    assert module.__doc__ and module.step.__doc__ and module.init.__doc__
