package gamesessions.pubsub;

import java.io.Serializable;
import java.util.List;
import org.apache.beam.sdk.io.UnboundedSource;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * A reader's part of a Flink checkpoint: the ack ids of every message it had emitted and not yet
 * acknowledged, acknowledged when the checkpoint completes, and its watermark, where a reader
 * restored from the checkpoint starts.
 *
 * <p>All outstanding ids, not only those since the previous checkpoint: Flink finalizes only the
 * checkpoint it reports complete, never one that failed or whose report it skipped, so what such a
 * checkpoint covered is acknowledged with the next one.
 */
final class AckMark implements UnboundedSource.CheckpointMark, Serializable {
  private static final long serialVersionUID = 1L;

  final List<String> ackIds;
  final long watermarkMs;
  /** The live reader's, to acknowledge through; null in a mark restored from a checkpoint. */
  private final transient @Nullable Leases leases;

  AckMark(List<String> ackIds, long watermarkMs, @Nullable Leases leases) {
    this.ackIds = ackIds;
    this.watermarkMs = watermarkMs;
    this.leases = leases;
  }

  @Override
  public void finalizeCheckpoint() {
    if (leases != null) {
      leases.acknowledge(ackIds);
    }
  }
}
