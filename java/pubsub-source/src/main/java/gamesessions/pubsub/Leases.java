package gamesessions.pubsub;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubClient;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubClient.SubscriptionPath;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The messages a reader has emitted and not yet acknowledged. They are acknowledged only when a
 * checkpoint that covers them completes (at-least-once: after a failure, what came after the
 * restored checkpoint is handed out again), and their leases are extended meanwhile, so a healthy
 * job sees no redeliveries however long its checkpoints take.
 *
 * <p>Every lease is at most the subscription's ack deadline long (a pull grants that much, an
 * extension the same again): a reader that dies leaves nothing leased for longer than that, which
 * is how long a new reader holds its watermark ({@link BacklogWatermark}).
 *
 * <p>Shared by the reader (Flink's source thread: pulls, extensions) and its checkpoint marks
 * (finalized on the task thread), hence synchronized.
 */
final class Leases {
  private static final Logger LOG = LoggerFactory.getLogger(Leases.class);
  /** Pub/Sub takes at most a few thousand ack ids a request; stay well below. */
  private static final int REQUEST_SIZE = 1000;

  private final PubsubClient client;
  private final SubscriptionPath subscription;
  private final int deadlineSeconds;
  /** Ack id -> wall clock (ms) at which its lease runs out; oldest first. */
  private final Map<String, Long> expiresAtMs = new LinkedHashMap<>();

  Leases(PubsubClient client, SubscriptionPath subscription, int deadlineSeconds) {
    this.client = client;
    this.subscription = subscription;
    this.deadlineSeconds = deadlineSeconds;
  }

  long deadlineMs() {
    return deadlineSeconds * 1000L;
  }

  /** A message pulled at {@code pulledAtMs} was emitted. */
  synchronized void emitted(String ackId, long pulledAtMs) {
    expiresAtMs.put(ackId, pulledAtMs + deadlineMs());
  }

  /** Everything emitted and not yet acknowledged: what a checkpoint taken now covers. */
  synchronized List<String> outstanding() {
    return new ArrayList<>(expiresAtMs.keySet());
  }

  /**
   * Acknowledges {@code ackIds}. A failure is logged, not thrown: the ids stay outstanding and the
   * next checkpoint tries again (or Pub/Sub redelivers them, and the job drops the copies).
   */
  void acknowledge(Collection<String> ackIds) {
    List<String> ids = new ArrayList<>(ackIds);
    try {
      for (List<String> request : requests(ids)) {
        client.acknowledge(subscription, request);
      }
    } catch (IOException e) {
      LOG.warn("Acknowledging {} Pub/Sub messages on {} failed; the next checkpoint tries again: {}",
          ids.size(), subscription.getPath(), e.toString());
      return;
    }
    synchronized (this) {
      expiresAtMs.keySet().removeAll(ids);
    }
  }

  /** Extends, by the ack deadline, every lease with less than half of it left. */
  void extend(long nowMs) {
    List<String> due = new ArrayList<>();
    synchronized (this) {
      for (Map.Entry<String, Long> lease : expiresAtMs.entrySet()) {
        if (lease.getValue() - nowMs < deadlineMs() / 2) {
          due.add(lease.getKey());
        }
      }
    }
    if (due.isEmpty()) {
      return;
    }
    try {
      for (List<String> request : requests(due)) {
        client.modifyAckDeadline(subscription, request, deadlineSeconds);
      }
    } catch (IOException e) {
      LOG.warn("Extending {} Pub/Sub leases on {} failed; they may be redelivered (copies are "
          + "dropped by event id): {}", due.size(), subscription.getPath(), e.toString());
      return;
    }
    synchronized (this) {
      for (String ackId : due) {
        expiresAtMs.replace(ackId, nowMs + deadlineMs());
      }
    }
  }

  private static List<List<String>> requests(List<String> ackIds) {
    List<List<String>> requests = new ArrayList<>();
    for (int i = 0; i < ackIds.size(); i += REQUEST_SIZE) {
      requests.add(ackIds.subList(i, Math.min(ackIds.size(), i + REQUEST_SIZE)));
    }
    return requests;
  }
}
