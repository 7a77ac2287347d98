"""hooks.load: the model module's own hooks, every other one the default, and what it gets wrong."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
from model_modules import FOREST_CLASSIFIER, TREE_CLASSIFIER, ModuleFactory
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from byoc import artifacts, defaults, hooks
from byoc.errors import InputError

ALL_HOOKS = (*hooks.TRAINING, *hooks.SERVING)


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data.astype(np.float32), np.array(data.target_names)[data.target]


@pytest.mark.usefixtures("model_module")
def test_the_demo_module_defines_only_its_estimator_and_trusted_types() -> None:
    loaded = hooks.load(hooks.DEFAULT_MODULE)

    assert loaded.path == hooks.DEFAULT_MODULE
    assert loaded.overridden == []
    assert loaded.module.TRUSTED_TYPES == ["sklearn.tree._tree.Tree"]
    estimator = loaded.build_estimator({})
    assert isinstance(estimator, DecisionTreeClassifier)
    assert estimator.random_state == 0


def test_the_module_is_byoc_predictor_or_beside_train(tmp_path: Path) -> None:
    assert hooks.module_path({}) == hooks.DEFAULT_MODULE
    assert hooks.DEFAULT_MODULE.parent == Path(artifacts.__file__).resolve().parent.parent
    assert hooks.module_path({hooks.PREDICTOR_ENV: ""}) == hooks.DEFAULT_MODULE
    own = tmp_path / "mine.py"
    assert hooks.module_path({hooks.PREDICTOR_ENV: str(own)}) == own.resolve()


def test_a_module_with_only_estimator_gets_every_default_hook(
    model_module: ModuleFactory,
) -> None:
    path = model_module(TREE_CLASSIFIER)

    loaded = hooks.load(path)

    assert loaded.overridden == []
    assert loaded.module.__name__ == hooks.MODULE_NAME
    assert sys.modules[hooks.MODULE_NAME] is loaded.module
    for name in ("fit", "evaluate", "metric_names", "describe"):
        assert getattr(loaded, name) is getattr(defaults, name)
    for name in ("input_fn", "predict_fn", "output_fn"):
        assert getattr(loaded, name) is getattr(defaults, name)
    for name in ("save_model", "model_fn"):
        hook = getattr(loaded, name)
        assert isinstance(hook, functools.partial)
        assert hook.func is getattr(defaults, name)
        assert hook.keywords == {"trusted_types": ["sklearn.tree._tree.Tree"]}


def test_the_default_hooks_train_save_load_and_predict_end_to_end(
    model_module: ModuleFactory, tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    features, labels = iris
    loaded = hooks.load(model_module(TREE_CLASSIFIER))

    estimator = loaded.build_estimator({"max_depth": "2"})
    fitted = loaded.fit(estimator, features, labels)
    metrics = loaded.evaluate(fitted, features, labels)
    artifacts.save(tmp_path / "model", lambda s: loaded.save_model(fitted, s), {})
    model = loaded.model_fn(tmp_path / "model")
    request = defaults.Request(accept="application/json")
    prediction = loaded.predict_fn(loaded.input_fn(features[:3], model), model, request)

    assert fitted.max_depth == 2
    assert tuple(metrics) == loaded.metric_names(fitted)
    assert loaded.describe(fitted).startswith("DecisionTreeClassifier, depth 2")
    assert loaded.output_fn(prediction, model, request) == fitted.predict(features[:3]).tolist()


def test_overriding_one_hook_keeps_the_others_default(
    model_module: ModuleFactory, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    path = model_module(
        TREE_CLASSIFIER
        + """

def describe(estimator):
    return "my own words"


fit = "not callable: not a hook"
"""
    )
    features, labels = iris

    loaded = hooks.load(path)

    assert loaded.overridden == ["describe"]
    assert loaded.describe(DecisionTreeClassifier()) == "my own words"
    assert loaded.fit is defaults.fit
    assert loaded.evaluate is defaults.evaluate
    assert loaded.output_fn is defaults.output_fn
    assert loaded.save_model.keywords == {"trusted_types": ["sklearn.tree._tree.Tree"]}
    fitted = loaded.fit(loaded.build_estimator({}), features, labels)
    assert set(loaded.evaluate(fitted, features, labels)) == {"accuracy", "f1_macro"}


def test_an_own_serving_hook_can_call_its_default(
    model_module: ModuleFactory, tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    path = model_module(
        TREE_CLASSIFIER
        + """

from byoc import defaults


def output_fn(prediction, model, request):
    return [str(label).upper() for label in defaults.output_fn(prediction, model, request)]
"""
    )
    features, labels = iris
    loaded = hooks.load(path)
    fitted = loaded.fit(loaded.build_estimator({}), features, labels)
    artifacts.save(tmp_path / "model", lambda s: loaded.save_model(fitted, s), {})
    model = loaded.model_fn(tmp_path / "model")
    request = defaults.Request(accept="text/csv")

    records = loaded.output_fn(loaded.predict_fn(features[:1], model, request), model, request)

    assert loaded.overridden == ["output_fn"]
    assert records == ["SETOSA"]


def test_an_own_build_estimator_needs_no_estimator_function(model_module: ModuleFactory) -> None:
    path = model_module(
        """
        def build_estimator(hyperparameters):
            from sklearn.tree import DecisionTreeRegressor

            return DecisionTreeRegressor(max_depth=int(hyperparameters.get("depth", 3)))
        """
    )

    loaded = hooks.load(path)

    assert loaded.overridden == ["build_estimator"]
    assert loaded.build_estimator({"depth": "5"}).max_depth == 5


def test_a_module_without_estimator_loads_but_fails_to_build_naming_the_file(
    model_module: ModuleFactory,
) -> None:
    path = model_module(
        """
        def model_fn(model_dir):
            return None
        """
    )

    loaded = hooks.load(path)  # serving needs no estimator: loading succeeds

    with pytest.raises(hooks.HookError, match=r"estimator\(\)") as error:
        loaded.build_estimator({})
    assert str(path) in str(error.value)


def test_a_non_callable_estimator_is_no_estimator(model_module: ModuleFactory) -> None:
    loaded = hooks.load(model_module("estimator = 'DecisionTreeClassifier'\n"))

    with pytest.raises(hooks.HookError, match="defines neither estimator"):
        loaded.build_estimator({})


def test_a_bad_hyperparameter_is_the_jobs_input_error_not_a_hook_error(
    model_module: ModuleFactory,
) -> None:
    loaded = hooks.load(model_module(TREE_CLASSIFIER))

    with pytest.raises(InputError, match='Hyperparameter max_depth="0" is not valid'):
        loaded.build_estimator({"max_depth": "0"})


def test_each_build_starts_from_a_fresh_estimator(model_module: ModuleFactory) -> None:
    loaded = hooks.load(model_module(TREE_CLASSIFIER))

    first = loaded.build_estimator({"max_depth": "2"})
    second = loaded.build_estimator({})

    assert first is not second
    assert first.max_depth == 2
    assert second.max_depth is None


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (
            "import no_such_module_here\n",
            "ModuleNotFoundError: No module named 'no_such_module_here'",
        ),
        ("def estimator(:\n", "SyntaxError"),
        ("raise RuntimeError('the model module broke')\n", "RuntimeError: the model module broke"),
    ],
    ids=["import error", "syntax error", "error at import"],
)
def test_a_module_that_fails_to_import_is_a_hook_error_naming_the_file_and_the_error(
    model_module: ModuleFactory, source: str, error: str
) -> None:
    path = model_module(source)

    with pytest.raises(hooks.HookError) as raised:
        hooks.load(path)

    message = str(raised.value)
    assert message.startswith(f"importing {path} failed: ")
    assert error in message
    left = sys.modules.get(hooks.MODULE_NAME)
    assert getattr(left, "__file__", None) != str(path), "a half-imported module was kept"


def test_a_missing_module_is_a_hook_error_naming_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "predictor.py"

    with pytest.raises(hooks.HookError, match=r"does not exist \(set \$BYOC_PREDICTOR\)") as error:
        hooks.load(path)
    assert str(path) in str(error.value)


def test_the_module_can_import_its_neighbours(model_module: ModuleFactory) -> None:
    path = model_module(
        """
        from neighbour import DEPTH


        def estimator():
            from sklearn.tree import DecisionTreeClassifier

            return DecisionTreeClassifier(max_depth=DEPTH)
        """
    )
    (path.parent / "neighbour.py").write_text("DEPTH = 7\n")

    assert hooks.load(path).build_estimator({}).max_depth == 7


def test_the_module_is_imported_once(model_module: ModuleFactory, tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    path = model_module(
        f"""
        with open({str(log)!r}, "a") as f:
            f.write("imported\\n")
        """
    )

    assert hooks.load(path) is hooks.load(path)
    assert log.read_text() == "imported\n"


# ---------------------------------------------------------------------------- TRUSTED_TYPES


def test_without_trusted_types_save_model_refuses_a_tree_naming_the_type(
    model_module: ModuleFactory, tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    loaded = hooks.load(model_module(TREE_CLASSIFIER.replace("TRUSTED_TYPES", "UNUSED")))
    fitted = loaded.fit(loaded.build_estimator({}), *iris)

    with pytest.raises(defaults.ModelCodeError) as error:
        loaded.save_model(fitted, tmp_path)

    message = str(error.value)
    assert "sklearn.tree._tree.Tree" in message
    assert "TRUSTED_TYPES" in message


def test_trusted_types_may_be_any_sequence(
    model_module: ModuleFactory, tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    source = TREE_CLASSIFIER.replace(
        "TRUSTED_TYPES = ['sklearn.tree._tree.Tree']",
        "TRUSTED_TYPES = ('sklearn.tree._tree.Tree',)",
    )
    assert source != TREE_CLASSIFIER
    loaded = hooks.load(model_module(source))
    fitted = loaded.fit(loaded.build_estimator({}), *iris)

    loaded.save_model(fitted, tmp_path)

    assert (tmp_path / defaults.SKOPS_FILE).is_file()


def test_model_fn_loads_with_the_modules_trusted_types_only(
    model_module: ModuleFactory, tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    trusting = hooks.load(model_module(FOREST_CLASSIFIER))
    fitted = trusting.fit(trusting.build_estimator({}), *iris)
    model_dir = tmp_path / "model"
    artifacts.save(model_dir, lambda s: trusting.save_model(fitted, s), {})

    model = trusting.model_fn(model_dir)
    assert isinstance(model.estimator, RandomForestClassifier)

    distrusting = hooks.load(model_module(FOREST_CLASSIFIER.replace("TRUSTED_TYPES", "UNUSED")))
    with pytest.raises(artifacts.ModelError, match="TRUSTED_TYPES"):
        distrusting.model_fn(model_dir)


def test_every_hook_name_is_a_field_of_hooks() -> None:
    fields = set(hooks.Hooks.__dataclass_fields__)

    assert set(ALL_HOOKS) <= fields
    assert fields - set(ALL_HOOKS) == {"path", "module"}
