"""`tf.distribute` strategies by name, for `train(strategy=...)` and `train --strategy`.

| name | strategy | devices |
| --- | --- | --- |
| "default" | `tf.distribute.get_strategy()` | one device (the first GPU, else the CPU) |
| "mirrored" | `tf.distribute.MirroredStrategy()` | all GPUs of this machine |
| "multi-worker" | `tf.distribute.MultiWorkerMirroredStrategy()` | all GPUs of every machine in `TF_CONFIG` |
| "tpu" | `tf.distribute.TPUStrategy` | the cores of a Cloud TPU |

Build and compile the model inside `strategy.scope()`; `fit` splits every global
batch between the replicas. See docs/scaling.md for the commands.
"""

from __future__ import annotations

import functools
import json
import os
import warnings

import tensorflow as tf

from dcgan_keras.config import STRATEGIES


def make_strategy(name: str, tpu: str | None = None) -> tf.distribute.Strategy:
    """Creates the `tf.distribute` strategy called `name`.

    "multi-worker" must be created when the program starts, before TensorFlow
    runs anything (it configures collective operations), on every machine,
    each with its own `TF_CONFIG`. "tpu" connects to a Cloud TPU and
    initialises it.

    Args:
        name: "default", "mirrored", "multi-worker" or "tpu".
        tpu: for "tpu": the TPU's name or `grpc://` address; by default the
            one in the `TPU_NAME` variable, else the TPU of this VM ("local",
            Cloud TPU VMs).

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: for an unknown name.
        RuntimeError: for "tpu" where no TPU can be found.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            warnings.warn(
                "strategy 'multi-worker' without a TF_CONFIG environment variable trains "
                "on this machine alone. Set TF_CONFIG on every machine (docs/scaling.md).",
                stacklevel=2,
            )
        else:
            check_tf_config(os.environ["TF_CONFIG"])
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as error:
            raise RuntimeError(
                "strategy 'multi-worker' must be created when the program starts, before "
                "TensorFlow runs any operation (it configures collective operations then). "
                "Call dcgan_keras.make_strategy('multi-worker') first thing and pass the "
                f"strategy on. Received: strategy='multi-worker', error: {error}"
            ) from error
    if name == "tpu":
        return _tpu_strategy(tpu)
    raise ValueError(
        f"Unknown distribution strategy {name!r}: use one of {', '.join(STRATEGIES)}, "
        f"or pass a tf.distribute.Strategy instance. Received: strategy={name!r}"
    )


_TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
)


def check_tf_config(text: str) -> dict:
    """The `TF_CONFIG` environment variable's value, parsed, or a ValueError saying what is wrong with it.

    It must be a JSON object whose "cluster" maps task types to lists of "host:port"
    addresses, and whose "task" names this process: a "type" of the cluster and an
    "index" into its list.
    """
    def wrong(what):
        shown = text if len(text) <= 200 else text[:200] + "..."
        return ValueError(
            f"The TF_CONFIG environment variable is malformed: {what}. Set it on every machine to JSON such as "
            f"{_TF_CONFIG_EXAMPLE} (docs/scaling.md), or unset it to train on this machine alone. "
            f"Received: TF_CONFIG={shown!r}"
        )

    try:
        config = json.loads(text)
    except ValueError as error:
        raise wrong(f"it is not valid JSON ({type(error).__name__}: {error})") from None
    if not isinstance(config, dict):
        raise wrong(f"it is a JSON {type(config).__name__}, not an object")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    if not isinstance(cluster, dict) or not all(
        isinstance(hosts, list) and hosts and all(isinstance(h, str) and ":" in h for h in hosts)
        for hosts in cluster.values()
    ):
        raise wrong('"cluster" must map each task type to a non-empty list of "host:port" strings')
    if not isinstance(task, dict):
        raise wrong('"task" must be an object with a "type" and an "index"')
    if task and task.get("type") != "evaluator":  # an evaluator is not in the cluster
        kind, index = task.get("type"), task.get("index", 0)
        if kind not in cluster:
            raise wrong(f'"task" has type {kind!r}, which is not one of the cluster\'s ({", ".join(cluster) or "none"})')
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
            raise wrong(
                f'"task" has index {index!r}, but the cluster\'s {kind!r} list has {len(cluster[kind])} '
                f"address(es) (indices 0..{len(cluster[kind]) - 1})"
            )
    return config


# Variables through which TPUClusterResolver finds a TPU by itself.
_TPU_ENVIRONMENT = ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_CONFIG")


def _tpu_strategy(tpu: str | None) -> tf.distribute.TPUStrategy:
    name = tpu
    if name is None and not any(variable in os.environ for variable in _TPU_ENVIRONMENT):
        name = "local"  # the TPU attached to this VM (Cloud TPU VMs)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise RuntimeError(
            "strategy 'tpu' found no TPU to connect to. Run on a Cloud TPU VM (with the "
            "TPU build of TensorFlow), or set TPU_NAME to the TPU's name or grpc:// "
            "address; without a TPU, use 'default' or 'mirrored'. "
            f"Received: tpu={tpu!r} (connecting to {name!r}), error: "
            f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def get_strategy(strategy: str | tf.distribute.Strategy | None) -> tf.distribute.Strategy:
    """A strategy from a name (`make_strategy`), an instance, or `None` (the current one).

    Args:
        strategy: a name, a `tf.distribute.Strategy`, or `None`.

    Returns:
        A `tf.distribute.Strategy`: `None` gives the one whose scope is active,
        else the default strategy.
    """
    if strategy is None:
        return tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if isinstance(strategy, str):
        return make_strategy(strategy)
    raise TypeError(
        "strategy must be a name (" + ", ".join(STRATEGIES) + "), a tf.distribute.Strategy "
        f"or None. Received: strategy={strategy!r} of type {type(strategy).__name__}"
    )


def worker_task(strategy: tf.distribute.Strategy) -> tuple[str | None, int | None]:
    """The (task type, task id) of this process in a multi-worker cluster.

    Args:
        strategy: any strategy.

    Returns:
        `("worker", 1)` and the like under a multi-worker strategy (from its
        cluster resolver, i.e. `TF_CONFIG`), `(None, None)` otherwise.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's results (checkpoints, exports, plots).

    In a multi-worker cluster the chief is the "chief" task if `TF_CONFIG`
    names one, else worker 0; every other process is a non-chief worker.
    Without a cluster, the one process is the chief.

    Args:
        strategy: any strategy.

    Returns:
        `True` for the chief.
    """
    task_type, task_id = worker_task(strategy)
    if task_type is None or task_type == "chief":
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def input_shard(strategy=None) -> tuple[int, int] | None:
    """`(num_workers, worker_index)` of this process under a multi-worker strategy.

    Args:
        strategy: a `tf.distribute.Strategy`; `None` uses the one whose scope
            is active.

    Returns:
        `(num_workers, worker_index)` for `data.make_dataset(shard=...)` when the
        strategy spans several workers (`TF_CONFIG`); `None` otherwise.
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return None
    cluster = resolver.cluster_spec().as_dict()
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    if chiefs + workers <= 1 or resolver.task_type not in ("chief", "worker"):
        return None
    index = resolver.task_id if resolver.task_type == "chief" else chiefs + resolver.task_id
    return chiefs + workers, index


def _multi_worker(strategy: tf.distribute.Strategy) -> bool:
    # The condition under which Keras' fit reduces logs across workers.
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()
    )


def multi_worker_step(train_step):
    """Decorates a `train_step(model, data)` to run under several workers.

    Under a `MultiWorkerMirroredStrategy` spanning several workers, the step
    gets two fixes; anywhere else it runs unchanged.

    1. Every op of the step waits for the batch. There the end of a dataset of
       unknown length is found inside the step's graph, one step late, and the
       ops that do not read the batch (optimizer step counters, metric counts,
       the noise seed) would still run for that phantom step: one step too many
       per epoch, and diluted epoch losses. (Only there: on one machine the
       dependency slows the step, as it keeps grappler from fusing and
       overlapping ops.)
    2. The logs are one-element vectors: with several workers, Keras 3 reduces
       the step's logs with `strategy.reduce(MEAN, axis=0)`, which fails on
       scalars (tensorflow/tensorflow#72388); vectors reduce to the scalar mean.

    Args:
        train_step: a function `(model, data) -> dict of scalar logs`.

    Returns:
        The decorated function.
    """

    @functools.wraps(train_step)
    def step(model, data):
        if not _multi_worker(tf.distribute.get_strategy()):
            return train_step(model, data)
        with tf.control_dependencies(tf.nest.flatten(data)):
            logs = train_step(model, data)
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}

    return step


def step_uses_xla(model) -> bool | None:
    """Whether the training step that `fit` traced for `model` is compiled with XLA.

    Reads the traced graph (the `_XlaMustCompile` mark that `jit_compile=True` leaves on
    the step's function): what runs, where `model.jit_compile` says what was resolved at
    `compile`. Keras' "auto" turns XLA off under any `tf.distribute` strategy, even of one
    device (keras-team/keras#18716); `compile(jit_compile=True)` keeps it there.

    Args:
        model: a compiled Keras model.

    Returns:
        True or False once `fit` has traced a step; None before.
    """
    function = getattr(model, "train_function", None)
    for cell in getattr(function, "__closure__", None) or ():
        traced = getattr(cell.cell_contents, "_list_all_concrete_functions", None)
        for concrete in traced() if traced else ():
            library = concrete.graph.as_graph_def().library.function
            return any(f.attr["_XlaMustCompile"].b for f in library if "_XlaMustCompile" in f.attr)
    return None
