"""The pyspark Structured Streaming peer of the devpipe stream workers: the classic "seed 000" job
(/work/shared/reference/000_*.txt, exercises 5-7) on devpipe's own events topic, in catch-up mode.

    <spark-venv>/bin/python bench/peers/spark_job.py --brokers 127.0.0.1:19092 --topic peerbench.events.raw \
        --cars cars.jsonl --car-colors car_colors.jsonl --car-models car_models.jsonl --jars a.jar,b.jar

Two streaming queries on one local[2] session, each reading and parsing every record of the topic (as seed
000's enrichment, alert and counter jobs each read Kafka, and devpipe's enrich, alerts and windows jobs do):

  alerts   parse -> vehicle.telemetry only -> broadcast join of cars + colours + models -> expected_gear =
           round(speed / 30) -> alert filter (speed > 120, expected_gear != gear, rpm > 6000) -> foreachBatch
           that aggregates the batch's alerts by colour (count, max speed, max rpm) and keeps running totals
  windows  the same alerts -> 2-minute watermark on event_time -> 15-minute window sliding every minute with
           total_alerts, black/white/silver cars, max speed/gear/rpm (devpipe's vehicle_alerts_15m view, seed
           000's ex7) -> foreachBatch that collects the windows the watermark closed

The sinks do real work (every row is computed and aggregated, the window state is kept and checkpointed)
but no heavy I/O. The job reads the topic's end offsets at start, runs until both queries have reached them,
then stops and prints one JSON line on stdout; everything else goes to stderr. records_per_s is records /
(last batch end - first batch start): the JVM's start-up and the queries' planning before the first batch are
in startup_seconds instead.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime

T_PROCESS = time.time()


def log(message):
    print(f"[spark-peer] {message}", file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--brokers", required=True, help="Kafka bootstrap servers, host:port[,host:port]")
    p.add_argument("--topic", required=True)
    p.add_argument("--records", type=int, default=0,
                   help="records expected in the topic: a cross-check, and the stop condition when the end offsets cannot be read")
    p.add_argument("--cars", required=True, help="JSON lines: car_id, driver_id, model_id, color_id")
    p.add_argument("--car-colors", required=True, help="JSON lines: color_id, color_name")
    p.add_argument("--car-models", required=True, help="JSON lines: model_id, car_brand, car_model")
    p.add_argument("--jars", default=os.environ.get("SPARK_PEER_JARS", ""),
                   help="comma-separated connector jars (default: $SPARK_PEER_JARS, as bench/peers/spark-setup.sh prints)")
    p.add_argument("--shuffle-partitions", type=int, default=4,
                   help="spark.sql.shuffle.partitions: the window state's partitions (default 4: 2 per core)")
    p.add_argument("--max-offsets-per-trigger", type=int, default=0,
                   help="records per micro-batch and query, over all partitions (default 0: unset, Spark's default, "
                        "the whole backlog in one batch; each bounded batch adds fixed costs, see bench/peers/README.md)")
    p.add_argument("--queries", default="alerts,windows",
                   help="which of the two streaming queries to run (default both; one alone is for comparison)")
    p.add_argument("--driver-memory", default="2g")
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the catch-up before giving up")
    p.add_argument("--summary", help="also write a small JSON summary (alerts by colour, windows) to this file")
    return p.parse_args()


def main():
    args = parse_args()
    wanted = {q.strip() for q in args.queries.split(",") if q.strip()}
    if not wanted or not wanted <= {"alerts", "windows"}:
        sys.exit("spark_job.py: --queries takes alerts, windows or both")
    if not args.jars and not os.environ.get("PYSPARK_SUBMIT_ARGS"):
        sys.exit("spark_job.py: no connector jars: pass --jars or set SPARK_PEER_JARS (bash bench/peers/spark-setup.sh prints it)")
    # The jars go on the command line of the JVM that pyspark launches, before it starts.
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f"--jars {args.jars} --driver-memory {args.driver_memory} pyspark-shell")
    # Spark binds to the host's first non-loopback address by default: keep it on loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    import pyspark
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("devpipe-peer-seed000")
        .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.streaming.numRecentProgressUpdates", "100000")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    t_session = time.time()
    log(f"spark {pyspark.__version__} session up in {t_session - T_PROCESS:.1f} s")

    target = end_offsets(spark, args.brokers, args.topic)
    if target is not None:
        total = sum(end - begin for begin, end in target.values())
        log(f"topic {args.topic}: {len(target)} partitions, {total} records to read")
        if args.records and args.records != total:
            log(f"warning: --records {args.records} but the topic holds {total} records; reading all of them")
    elif args.records > 0:
        total = args.records
        log(f"could not read the end offsets; stopping after {total} records (--records)")
    else:
        sys.exit("spark_job.py: could not read the topic's end offsets: pass --records")

    # ------------------------------------------------------------ dims, joined once and broadcast
    cars = spark.read.schema("car_id LONG, driver_id LONG, model_id LONG, color_id LONG").json(args.cars)
    colors = spark.read.schema("color_id LONG, color_name STRING").json(args.car_colors)
    models = spark.read.schema("model_id LONG, car_brand STRING, car_model STRING").json(args.car_models)
    dims = cars.join(colors, "color_id").join(models, "model_id").select(
        "car_id", "driver_id", F.col("car_brand").alias("brand_name"), F.col("car_model").alias("model_name"), "color_name"
    ).cache()
    log(f"dims: {dims.count()} cars")

    # ------------------------------------------------------------ the stream
    payload = StructType([
        StructField("car_id", LongType()), StructField("speed", DoubleType()),
        StructField("rpm", DoubleType()), StructField("gear", LongType()),
    ])
    envelope = StructType([
        StructField("type", StringType()), StructField("key", StringType()), StructField("event_id", StringType()),
        StructField("event_time", LongType()), StructField("ingest_time", LongType()), StructField("payload", payload),
    ])

    def alerts_stream():
        reader = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", args.brokers)
            .option("subscribe", args.topic)
            .option("startingOffsets", "earliest")
            .option("failOnDataLoss", "true")
        )
        if args.max_offsets_per_trigger > 0:
            reader = reader.option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
        events = reader.load().select(F.from_json(F.col("value").cast("string"), envelope).alias("e")).select("e.*")
        telemetry = events.where(F.col("type") == "vehicle.telemetry").select(
            "event_id", F.timestamp_millis("event_time").alias("event_time"),
            "payload.car_id", "payload.speed", "payload.rpm", "payload.gear",
        )
        enriched = telemetry.join(F.broadcast(dims), "car_id").withColumn(
            "expected_gear", F.round(F.col("speed") / 30).cast("long")
        )
        return enriched.where((F.col("speed") > 120) | (F.col("expected_gear") != F.col("gear")) | (F.col("rpm") > 6000))

    by_colour = {}

    def on_alerts(batch, _batch_id):
        for row in batch.groupBy("color_name").agg(
            F.count("*").alias("n"), F.max("speed").alias("max_speed"), F.max("rpm").alias("max_rpm")
        ).collect():
            acc = by_colour.setdefault(row["color_name"], {"alerts": 0, "max_speed": None, "max_rpm": None})
            acc["alerts"] += row["n"]
            acc["max_speed"] = max(filter(None, [acc["max_speed"], row["max_speed"]]), default=None)
            acc["max_rpm"] = max(filter(None, [acc["max_rpm"], row["max_rpm"]]), default=None)

    colour_count = lambda name: F.sum(F.when(F.lower("color_name") == name, 1).otherwise(0))  # noqa: E731
    windows = (
        alerts_stream()
        .withWatermark("event_time", "2 minutes")
        .groupBy(F.window("event_time", "15 minutes", "1 minute"))
        .agg(
            F.count("*").alias("total_alerts"), colour_count("black").alias("black_cars"),
            colour_count("white").alias("white_cars"), colour_count("silver").alias("silver_cars"),
            F.max("speed").alias("max_speed"), F.max("gear").alias("max_gear"), F.max("rpm").alias("max_rpm"),
        )
    )
    closed = {"windows": 0, "last": None}

    def on_windows(batch, _batch_id):
        rows = batch.orderBy("window").collect()
        closed["windows"] += len(rows)
        if rows:
            last = rows[-1].asDict()
            last["window"] = {"start": str(last["window"]["start"]), "end": str(last["window"]["end"])}
            closed["last"] = last

    checkpoints = tempfile.mkdtemp(prefix="devpipe-spark-peer-")
    queries = {}
    jvm_pid = spark._jvm.java.lang.ProcessHandle.current().pid()
    cpu0 = cpu_snapshot(jvm_pid)
    try:
        if "alerts" in wanted:
            queries["alerts"] = (
                alerts_stream().writeStream.queryName("alerts").outputMode("append").foreachBatch(on_alerts)
                .option("checkpointLocation", os.path.join(checkpoints, "alerts")).start()
            )
        if "windows" in wanted:
            queries["windows"] = (
                windows.writeStream.queryName("windows").outputMode("append").foreachBatch(on_windows)
                .option("checkpointLocation", os.path.join(checkpoints, "windows")).start()
            )
        progress = wait_caught_up(queries, target, args.topic, total, args.timeout)
        cpu1 = cpu_snapshot(jvm_pid)
    finally:
        for q in queries.values():
            try:
                q.stop()
            except Exception as error:  # noqa: BLE001 - stopping is best effort; the result is already in hand
                log(f"stopping {q.name}: {error}")
        shutil.rmtree(checkpoints, ignore_errors=True)

    result = summarise(progress, total, T_PROCESS, t_session)
    # CPU over the catch-up (queries started to caught up): Spark's JVM, and everything else on the machine
    # (this Python driver included, which only polls): a check that the box was quiet during the run.
    result["jvm_cpu_seconds"] = round(cpu1["jvm"] - cpu0["jvm"], 2)
    result["other_cpu_seconds"] = round(max(0.0, (cpu1["machine"] - cpu0["machine"]) - (cpu1["jvm"] - cpu0["jvm"])), 2)
    alerts_total = sum(c["alerts"] for c in by_colour.values())
    result.update({
        "alerts": alerts_total,
        "windows_closed": closed["windows"],
        "spark": pyspark.__version__,
        "master": "local[2]",
        "shuffle_partitions": args.shuffle_partitions,
        "max_offsets_per_trigger": args.max_offsets_per_trigger or None,
        "queries_run": sorted(queries),
        "driver_memory": args.driver_memory,
    })
    if args.summary:
        batches = {
            name: [{"batch": p.batchId, "rows": p.numInputRows, "start": p.timestamp, "ms": p.batchDuration, "durations": p.durationMs} for p in ps]
            for name, ps in progress.items()
        }
        with open(args.summary, "w") as f:
            json.dump({"result": result, "alerts_by_colour": by_colour, "windows_closed": closed["windows"], "last_window": closed["last"], "batches": batches}, f, indent=2, default=str)
    spark.stop()
    print(json.dumps(result), flush=True)


def end_offsets(spark, brokers, topic):
    """{partition: (beginning, end)} read with the connector's kafka-clients through py4j; None when that fails."""
    try:
        jvm = spark._jvm
        props = jvm.java.util.Properties()
        props.setProperty("bootstrap.servers", brokers)
        props.setProperty("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer")
        props.setProperty("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer")
        consumer = jvm.org.apache.kafka.clients.consumer.KafkaConsumer(props)
        try:
            tps = jvm.java.util.ArrayList()
            for info in consumer.partitionsFor(topic):
                tps.add(jvm.org.apache.kafka.common.TopicPartition(topic, info.partition()))
            if tps.size() == 0:
                return None
            begin, end = consumer.beginningOffsets(tps), consumer.endOffsets(tps)
            return {tp.partition(): (begin.get(tp), end.get(tp)) for tp in tps}
        finally:
            consumer.close()
    except Exception as error:  # noqa: BLE001 - the caller falls back to --records
        log(f"reading end offsets failed: {error}")
        return None


def cpu_snapshot(jvm_pid):
    """CPU seconds used so far by the JVM (its /proc stat) and by the whole machine (/proc/stat, busy time)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{jvm_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        jvm = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        with open("/proc/stat") as f:
            cpu = [int(v) for v in f.readline().split()[1:]]
        machine = (sum(cpu[:8]) - cpu[3] - cpu[4]) / tick  # all but idle and iowait; guest time is in user
    except (OSError, ValueError, IndexError):
        return {"jvm": 0.0, "machine": 0.0}
    return {"jvm": jvm, "machine": machine}


def wait_caught_up(queries, target, topic, total, timeout, settle=2.0):
    """Polls the queries' progress until each has read up to the end offsets (or `total` records) and
    finished what that data sets off: the no-data batch in which the windows query's advanced watermark
    closes windows and evicts their state. A query counts as finished once its last batch is such a
    no-data batch, or once it has started no batch for `settle` seconds. The wait is not measured: the
    figures come from the batches' own start times and durations."""
    deadline = time.time() + timeout
    last_log = 0.0
    seen = {name: (None, time.time()) for name in queries}
    state = {}
    while True:
        done = True
        for name, q in queries.items():
            if not q.isActive:
                raise RuntimeError(f"query {name} stopped: {q.exception()}")
            # lastProgress alone (recentProgress re-parses every report): this loop should cost Spark no CPU.
            last = q.lastProgress
            mark = (last.batchId, last.timestamp) if last else None
            if mark != seen[name][0]:
                seen[name] = (mark, time.time())
            if last is None:
                caught_up = False
            elif target is not None:
                offsets = json.loads(last.sources[0].endOffset or "{}").get(topic, {})
                caught_up = all(int(offsets.get(str(p), -1)) >= end for p, (_, end) in target.items())
            else:
                caught_up = sum(p.numInputRows for p in q.recentProgress) >= total
            # The last report is a no-data batch, or an idle report: either way nothing is left to run.
            settled = caught_up and (
                last.numInputRows == 0
                or (not q.status["isTriggerActive"] and time.time() - seen[name][1] >= settle)
            )
            state[name] = "done" if settled else "caught up" if caught_up else f"batch {last.batchId}" if last else "starting"
            done = done and settled
        if done:
            return {name: q.recentProgress for name, q in queries.items()}
        if time.time() > deadline:
            raise TimeoutError(f"not caught up after {timeout:.0f} s")
        if time.time() - last_log > 10:
            last_log = time.time()
            log(", ".join(f"{n}: {state[n]}" for n in queries))
        time.sleep(0.25)


def batch_span(p):
    """(start, end) of a micro-batch in epoch seconds."""
    start = datetime.fromisoformat(p.timestamp.replace("Z", "+00:00")).timestamp()
    return start, start + p.batchDuration / 1000


def summarise(progress, total, t_process, t_session):
    per_query = {}
    first_start, last_end = None, None
    read_all = []
    for name, reports in progress.items():
        # An idle query reports progress every 10 s with no batch behind it (no addBatch): leave those out.
        batches = [p for p in reports if "addBatch" in p.durationMs]
        with_data = [p for p in batches if p.numInputRows > 0]
        read = sum(p.numInputRows for p in with_data)
        read_all.append(read)
        if not with_data:
            continue
        # From the first batch with data to the end of the last batch, the trailing no-data batch (the
        # watermark closing windows) included.
        start, end = batch_span(with_data[0])[0], batch_span(batches[-1])[1]
        first_start = start if first_start is None else min(first_start, start)
        last_end = end if last_end is None else max(last_end, end)
        per_query[name] = {
            "records": read, "batches": len(with_data), "seconds": round(end - start, 3),
            "records_per_s": round(read / (end - start)) if end > start else None,
            "no_data_batches": sum(1 for p in batches if p.numInputRows == 0 and p.batchId > with_data[0].batchId),
            "max_batch_seconds": round(max(p.batchDuration for p in with_data) / 1000, 3),
        }
    records = min(read_all) if read_all else 0
    if records != total:
        log(f"warning: the queries read {read_all} records, the topic held {total}")
    seconds = (last_end - first_start) if first_start is not None else 0.0
    return {
        "bench": "peer", "engine": "pyspark", "records": records, "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds) if seconds > 0 else 0,
        "startup_seconds": round(first_start - t_process, 3) if first_start is not None else None,
        "jvm_session_seconds": round(t_session - t_process, 3),
        "batches": max((q["batches"] for q in per_query.values()), default=0),
        "queries": per_query,
    }


if __name__ == "__main__":
    main()
