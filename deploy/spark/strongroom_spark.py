"""Runs a Strongroom room's partitions on a Spark cluster.

The coordinating room runs this launcher with a Python that has PySpark, which starts the driver
with the cluster's spark-submit (client mode; the room sets PYSPARK_SUBMIT_ARGS), and writes its
tasks on the launcher's stdin, one JSON object a line: {"partition": N, "spec": "...", "token": "..."}.
The launcher makes a DataFrame of them, one Spark task per row, and with mapInArrow runs
`strongroom worker` for each row, handing it the spec and the token on stdin (never in Spark's
configuration, environment, files or logs). A worker's answer (an envelope its coordinator
checks) comes back as a binary column and leaves on this launcher's stdout, one line each:
"SRENV <partition> <base64>".

A worker that exits 0 (a partial) or 3 (a refusal no retry changes) has answered; any other exit
raises, and Spark retries the task (spark.task.maxFailures, which the room sets). mapInArrow is a
DataFrame API, so this also runs where only Spark Connect is offered.

Usage (the room builds this command; see docs/deploy.md):
  PYSPARK_SUBMIT_ARGS="--master M --files MODULE.wasm pyspark-shell" \
      python3 strongroom_spark.py --worker PATH --module-name MODULE.wasm < tasks
"""

import argparse
import base64
import json
import subprocess
import sys

RESULT_PREFIX = "SRENV"
ANSWERED = (0, 3)


def worker_function(worker, module_name):
    """The function each Spark task runs over its rows."""

    def run(batches):
        import time

        import pyarrow as pa
        from pyspark import SparkFiles

        import os

        from pyspark import TaskContext

        module = SparkFiles.get(module_name)
        context = TaskContext.get()
        attempt = context.attemptNumber() if context else 0
        # The process that forked this Python worker: one per executor.
        executor = os.getppid()
        for batch in batches:
            columns = batch.to_pydict()
            partitions, envelopes, starts, seconds = [], [], [], []
            for partition, spec, token in zip(
                columns["partition"], columns["spec"], columns["token"]
            ):
                start = time.time()
                done = subprocess.run(
                    [worker, "worker", "--module", module],
                    input=(spec + "\n" + token + "\n").encode(),
                    capture_output=True,
                )
                if done.returncode not in ANSWERED:
                    tail = done.stderr.decode(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"strongroom worker for partition {partition} exited with "
                        f"{done.returncode}: {tail}"
                    )
                partitions.append(partition)
                envelopes.append(done.stdout)
                starts.append(start)
                seconds.append(time.time() - start)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(partitions, pa.int32()),
                    pa.array(envelopes, pa.binary()),
                    pa.array([attempt] * len(partitions), pa.int32()),
                    pa.array([executor] * len(partitions), pa.int64()),
                    pa.array(starts, pa.float64()),
                    pa.array(seconds, pa.float64()),
                ],
                names=["partition", "envelope", "attempt", "executor", "start", "seconds"],
            )

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", required=True, help="the strongroom binary on executors")
    parser.add_argument("--module-name", required=True, help="the module shipped with --files")
    args = parser.parse_args()

    tasks = [json.loads(line) for line in sys.stdin if line.strip()]
    if not tasks:
        return

    import time

    from pyspark.sql import SparkSession

    started = time.monotonic()
    spark = SparkSession.builder.getOrCreate()
    ready = time.monotonic()
    ready_wall = time.time()
    spark.sparkContext.setLogLevel("WARN")
    rows = [(t["partition"], t["spec"], t["token"]) for t in tasks]
    # One slice per task, so that each partition is one Spark task (retried on its own).
    frame = spark.sparkContext.parallelize(rows, len(rows)).toDF(
        "partition int, spec string, token string"
    )
    answers = frame.mapInArrow(
        worker_function(args.worker, args.module_name),
        "partition int, envelope binary, attempt int, executor long, start double, "
        "seconds double",
    ).collect()
    done = time.monotonic()
    for row in answers:
        encoded = base64.b64encode(bytes(row["envelope"])).decode()
        sys.stdout.write(f"{RESULT_PREFIX} {row['partition']} {encoded}\n")
    sys.stdout.flush()
    # For the driver log (the room keeps it for the bank): where the answers came from.
    retried = sorted(row["partition"] for row in answers if row["attempt"] > 0)
    executors = len({row["executor"] for row in answers})
    master = spark.sparkContext.master
    first_task = min((row["start"] for row in answers), default=ready_wall) - ready_wall
    workers = sorted(row["seconds"] for row in answers) or [0.0]
    print(
        f"strongroom_spark: master {master}: {len(tasks)} tasks, {len(answers)} answers "
        f"from {executors} executor processes; answered on a retry: {retried}; "
        f"driver started in {ready - started:.2f} s, tasks ran in {done - ready:.2f} s, "
        f"first task began {first_task:.2f} s after the driver started; "
        f"workers {sum(workers):.2f} s in all, {workers[len(workers) // 2]:.3f} s median",
        file=sys.stderr,
    )
    spark.stop()


if __name__ == "__main__":
    main()
