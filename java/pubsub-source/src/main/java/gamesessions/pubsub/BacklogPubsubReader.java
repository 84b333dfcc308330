package gamesessions.pubsub;

import com.google.protobuf.util.Timestamps;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.List;
import java.util.NoSuchElementException;
import org.apache.beam.sdk.io.UnboundedSource;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubClient;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubClient.IncomingMessage;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubClient.SubscriptionPath;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubJsonClient;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubOptions;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pulls with Beam's JSON Pub/Sub client, which honours {@code --pubsubRootUrl} (how the job
 * reaches the emulator). Flink's source wrapper calls {@link #advance}, {@link #getWatermark} and
 * {@link #getCheckpointMark} under its checkpoint lock, so a pull must not wait for messages: it
 * returns at once, and after an empty one the next waits {@link #EMPTY_PULL_PAUSE_MS}.
 */
final class BacklogPubsubReader extends UnboundedSource.UnboundedReader<byte[]> {
  private static final Logger LOG = LoggerFactory.getLogger(BacklogPubsubReader.class);
  /** Pub/Sub's maximum per pull. */
  private static final int PULL_SIZE = 1000;
  /**
   * An empty pull is what takes the watermark to the wall clock when the stream is thin, and what
   * a message published just after it waits for: 10 pulls a second keep both within 100 ms. More
   * cost more than they gain where CPU is short: every pull costs the Pub/Sub emulator's REST
   * endpoint a few ms of CPU, and on the 2-core test machine, with the whole cluster on it, 50 ms
   * (two readers: 40 pulls a second) left changed p95 at 50 events/s at 1.83 s where 100 ms gave
   * 1.32 s (one run each, `make flink-load`, docs/flink-dataflow.md). The source wrapper asks
   * again every 50 ms. The JVM property {@code gamesessions.pubsub.emptyPullPauseMs} overrides it
   * (scripts/flink_cluster.sh: PUBSUB_EMPTY_PULL_PAUSE_MS).
   */
  private static final long EMPTY_PULL_PAUSE_MS =
      Long.getLong("gamesessions.pubsub.emptyPullPauseMs", 100L);
  /** Past the ack deadline, so that what a dead reader had leased is handed out again first. */
  private static final long HOLD_MARGIN_MS = 1000;
  /** Leases are extended with half the ack deadline (at least 5 s) left: a look a second will do. */
  private static final long LEASE_CHECK_INTERVAL_MS = 1000;

  private final BacklogPubsubSource source;
  private final SubscriptionPath subscription;
  private final PubsubClient client;
  private final Leases leases;
  private final BacklogWatermark watermark;
  private final ArrayDeque<Pulled> pulled = new ArrayDeque<>();
  private @Nullable IncomingMessage current;
  private long currentTimestampMs;
  /** After an empty or failed pull, the next waits until then. */
  private long nextPullAtMs;
  private long nextLeaseCheckAtMs;

  BacklogPubsubReader(BacklogPubsubSource source, PubsubOptions options, @Nullable AckMark restored)
      throws IOException {
    this.source = source;
    this.subscription = PubsubClient.subscriptionPathFromPath(source.subscription());
    // No timestamp attribute for the client: it would throw on a message without a usable one.
    this.client = PubsubJsonClient.FACTORY.newClient(null, null, options);
    this.leases = new Leases(client, subscription, client.ackDeadlineSeconds(subscription));
    long startMs = restored == null ? BoundedWindow.TIMESTAMP_MIN_VALUE.getMillis() : restored.watermarkMs;
    this.watermark = new BacklogWatermark(startMs, now() + leases.deadlineMs() + HOLD_MARGIN_MS);
    if (restored != null) {
      // Emitted before the checkpoint this job restored, so part of its state.
      leases.acknowledge(restored.ackIds);
    }
  }

  @Override
  public boolean start() throws IOException {
    return advance();
  }

  @Override
  public boolean advance() throws IOException {
    long nowMs = now();
    if (nowMs >= nextLeaseCheckAtMs) {
      leases.extend(nowMs);
      nextLeaseCheckAtMs = nowMs + LEASE_CHECK_INTERVAL_MS;
    }
    if (pulled.isEmpty()) {
      pull();
    }
    Pulled next = pulled.poll();
    if (next == null) {
      current = null;
      return false;
    }
    current = next.message;
    // Without a usable event time: the publish time, which the watermark never counted. The
    // parse step turns the message into a dead letter whatever its timestamp.
    currentTimestampMs = next.eventTimeMs != null ? next.eventTimeMs : current.timestampMsSinceEpoch();
    leases.emitted(current.ackId(), current.requestTimeMsSinceEpoch());
    return true;
  }

  /** A pulled message and its event time, read from its attribute once. */
  private static final class Pulled {
    final IncomingMessage message;
    final @Nullable Long eventTimeMs;

    Pulled(IncomingMessage message, @Nullable Long eventTimeMs) {
      this.message = message;
      this.eventTimeMs = eventTimeMs;
    }
  }

  private void pull() {
    long startedAtMs = now();
    if (startedAtMs < nextPullAtMs) {
      return;
    }
    List<IncomingMessage> messages;
    try {
      messages = client.pull(startedAtMs, subscription, PULL_SIZE, true);
    } catch (IOException e) {
      // Holds the watermark (nothing was learnt) and tries again after the pause: Pub/Sub keeps
      // the unacknowledged messages meanwhile.
      LOG.warn("Pulling {} failed, trying again: {}", subscription.getPath(), e.toString());
      nextPullAtMs = startedAtMs + EMPTY_PULL_PAUSE_MS;
      return;
    }
    long oldestEventMs = Long.MAX_VALUE;
    for (IncomingMessage message : messages) {
      Long eventTimeMs = EventTimes.fromAttribute(message.message().getAttributesMap(),
          source.timestampAttribute());
      if (eventTimeMs != null) {
        oldestEventMs = Math.min(oldestEventMs, eventTimeMs);
      }
      pulled.add(new Pulled(message, eventTimeMs));
    }
    watermark.pulled(startedAtMs, messages.size(), oldestEventMs);
    if (messages.isEmpty()) {
      nextPullAtMs = startedAtMs + EMPTY_PULL_PAUSE_MS;
    }
  }

  @Override
  public byte[] getCurrent() {
    IncomingMessage message = currentMessage();
    // The JSON client leaves the message id and publish time out of the proto; the job's dead
    // letters carry the id.
    return message.message().toBuilder()
        .setMessageId(message.recordId())
        .setPublishTime(Timestamps.fromMillis(message.timestampMsSinceEpoch()))
        .build()
        .toByteArray();
  }

  @Override
  public Instant getCurrentTimestamp() {
    currentMessage();
    return new Instant(currentTimestampMs);
  }

  @Override
  public byte[] getCurrentRecordId() {
    return currentMessage().recordId().getBytes(StandardCharsets.UTF_8);
  }

  private IncomingMessage currentMessage() {
    if (current == null) {
      throw new NoSuchElementException("no current Pub/Sub message");
    }
    return current;
  }

  @Override
  public Instant getWatermark() {
    return new Instant(watermark.valueMs());
  }

  @Override
  public AckMark getCheckpointMark() {
    return new AckMark(leases.outstanding(), watermark.valueMs(), leases);
  }

  @Override
  public BacklogPubsubSource getCurrentSource() {
    return source;
  }

  @Override
  public void close() throws IOException {
    client.close();
  }

  private static long now() {
    return System.currentTimeMillis();
  }
}
