package gamesessions.pubsub;

/**
 * The event-time watermark of a Pub/Sub read that cannot see its backlog: the Flink read's twin
 * of {@code transforms/direct_pubsub.BacklogWatermark}, which the DirectRunner's read uses.
 *
 * <p>What a pull returns says where the unread messages are: Pub/Sub hands a subscription's
 * messages out roughly oldest first, and publishers publish each event within {@code
 * --max_disorder_seconds} of its time (SPEC §3.3), which the job already tolerates. So the events
 * still waiting are no older than the oldest event of the last run of pulls. A run is the pulls
 * that came back full, one after the other, and the pull that ends them: the emulator swaps
 * neighbours a few hundred messages apart when it hands out a backlog, so one pull's oldest event
 * says too little. Only an empty pull proves the subscription drained: everything published before
 * it started has been read, and the watermark may reach that instant. So the watermark never
 * passes an event still in the backlog; being behind costs latency, never correctness.
 *
 * <p>A reader that starts (or restarts from a checkpoint) cannot know what an earlier reader had
 * pulled and not acknowledged; Pub/Sub hands those messages out again once their lease runs out.
 * Until then ({@code holdUntilMs}) the watermark stays where it started, and what is pulled
 * meanwhile says nothing about it.
 *
 * <p>Monotonic: an old straggler never moves it back. Not thread-safe: the reader's.
 */
final class BacklogWatermark {
  /** The emulator returns at most 100 messages a pull: a pull that brings as many says more wait. */
  static final int FULL_PULL = 100;
  /** Behind a backlog the watermark moves at least once every this many messages. */
  static final int RUN_SIZE = 2000;

  private final long holdUntilMs;
  private long valueMs;
  private long runStartedAtMs;
  private long runOldestEventMs = Long.MAX_VALUE;
  private int runMessages;

  BacklogWatermark(long startMs, long holdUntilMs) {
    this.valueMs = startMs;
    this.holdUntilMs = holdUntilMs;
  }

  long valueMs() {
    return valueMs;
  }

  /**
   * A pull that started at {@code startedAtMs} brought {@code messages} messages, the oldest
   * event time among those with a usable timestamp being {@code oldestEventMs} ({@link
   * Long#MAX_VALUE} when none had one: a message without an event time cannot hold the watermark).
   */
  void pulled(long startedAtMs, int messages, long oldestEventMs) {
    if (startedAtMs < holdUntilMs) {
      return;
    }
    if (messages == 0) {
      advanceTo(startedAtMs);
      endRun();
      return;
    }
    if (runMessages == 0) {
      runStartedAtMs = startedAtMs;
    }
    runMessages += messages;
    runOldestEventMs = Math.min(runOldestEventMs, oldestEventMs);
    if (messages < FULL_PULL || runMessages >= RUN_SIZE) {
      advanceTo(Math.min(runStartedAtMs, runOldestEventMs));
      endRun();
    }
  }

  private void advanceTo(long candidateMs) {
    valueMs = Math.max(valueMs, candidateMs);
  }

  private void endRun() {
    runMessages = 0;
    runOldestEventMs = Long.MAX_VALUE;
  }
}
