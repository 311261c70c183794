package io.streamlake.udfs;

import java.util.Arrays;
import org.apache.flink.connector.kafka.sink.KafkaPartitioner;

/**
 * The Silver sinks' Kafka partitioner ({@code 'sink.partitioner' =
 * 'io.streamlake.udfs.OwnedPartitions'}): sink subtask i of n owns the partitions at positions i,
 * i + n, i + 2n, ... of the topic, and spreads its rows over them by a hash of the record's key.
 *
 * <p>Two promises, both needed by every event-time reader of Silver (the Gold job, the DataStream
 * job): each partition has exactly one writer, so the watermark a row carries ({@code
 * stream_watermark_at}) bounds every on-time row after it in its partition; and every partition
 * has rows whenever its writer has, so no reader waits on an empty partition to be declared idle.
 * Flink's own {@code fixed} partitioner keeps the first and breaks the second (at parallelism 1
 * it writes partition 0 only); idleness is no substitute, since Flink counts it only while the
 * source is not back-pressured, so a reader catching up would wait on the empty partitions.
 *
 * <p>The hash is of the key's bytes (a stable function of the row), so a replay writes each row
 * to the same partition. With more subtasks than partitions a subtask shares a partition; the
 * submitter refuses that parallelism before it can happen.
 */
public class OwnedPartitions<T> implements KafkaPartitioner<T> {
    private static final long serialVersionUID = 1L;

    private int subtask;
    private int subtasks = 1;
    // The sink passes the topic's partitions with every record (the same array while the topic's
    // metadata stays the same): sorted once per array, not per record.
    private transient int[] given;
    private transient int[] sorted;

    @Override
    public void open(int parallelInstanceId, int parallelInstances) {
        if (parallelInstanceId < 0 || parallelInstances <= 0 || parallelInstanceId >= parallelInstances) {
            throw new IllegalArgumentException(
                    "OwnedPartitions: subtask " + parallelInstanceId + " of " + parallelInstances);
        }
        this.subtask = parallelInstanceId;
        this.subtasks = parallelInstances;
    }

    @Override
    public int partition(T record, byte[] key, byte[] value, String targetTopic, int[] partitions) {
        if (partitions == null || partitions.length == 0) {
            throw new IllegalArgumentException("OwnedPartitions: topic " + targetTopic + " has no partitions");
        }
        if (partitions != given) {
            int[] copy = partitions.clone();
            Arrays.sort(copy);
            sorted = copy;
            given = partitions;
        }
        if (sorted.length <= subtask) {
            return sorted[subtask % sorted.length];
        }
        int owned = (sorted.length - subtask + subtasks - 1) / subtasks;
        int h = Arrays.hashCode(key != null ? key : value);
        return sorted[subtask + subtasks * Math.floorMod(h, owned)];
    }
}
