package gamesessions.pubsub;

import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.io.UnboundedSource;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubOptions;
import org.apache.beam.sdk.options.PipelineOptions;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * A Pub/Sub subscription as serialized {@code google.pubsub.v1.PubsubMessage}s (what Python's
 * cross-language {@code ReadFromPubSub(with_attributes=True)} decodes), each timestamped with its
 * event time, under a watermark that follows the backlog ({@link BacklogWatermark}) rather than
 * PubsubIO's minimum over the last minute of messages.
 */
public final class BacklogPubsubSource extends UnboundedSource<byte[], AckMark> {
  private static final long serialVersionUID = 1L;

  private final String subscription;
  private final @Nullable String timestampAttribute;

  BacklogPubsubSource(String subscription, @Nullable String timestampAttribute) {
    this.subscription = subscription;
    this.timestampAttribute = timestampAttribute;
  }

  String subscription() {
    return subscription;
  }

  @Nullable String timestampAttribute() {
    return timestampAttribute;
  }

  /** Every split pulls the whole subscription; Pub/Sub shares the messages out among them. */
  @Override
  public List<BacklogPubsubSource> split(int desiredNumSplits, PipelineOptions options) {
    List<BacklogPubsubSource> splits = new ArrayList<>();
    for (int i = 0; i < Math.max(1, desiredNumSplits); i++) {
      splits.add(this);
    }
    return splits;
  }

  @Override
  public UnboundedReader<byte[]> createReader(PipelineOptions options, @Nullable AckMark restored)
      throws java.io.IOException {
    return new BacklogPubsubReader(this, options.as(PubsubOptions.class), restored);
  }

  @Override
  public Coder<AckMark> getCheckpointMarkCoder() {
    return SerializableCoder.of(AckMark.class);
  }

  @Override
  public Coder<byte[]> getOutputCoder() {
    return ByteArrayCoder.of();
  }

  @Override
  public String toString() {
    return "BacklogPubsubSource(" + subscription + ")";
  }
}
