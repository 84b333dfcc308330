package gamesessions.pubsub;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;

import java.util.Map;
import org.junit.Test;

public class BacklogWatermarkTest {
  private static final long NONE = Long.MAX_VALUE;

  @Test
  public void aPullThatIsNotFullMovesItToItsOldestEventOrItsStartWhicheverIsEarlier() {
    BacklogWatermark watermark = new BacklogWatermark(0, 0);
    watermark.pulled(10_000, 3, 9_000);
    assertEquals(9_000, watermark.valueMs());
    watermark.pulled(12_000, 3, 12_500);
    assertEquals(12_000, watermark.valueMs());
  }

  @Test
  public void anEmptyPullMovesItToTheInstantThePullStarted() {
    BacklogWatermark watermark = new BacklogWatermark(0, 0);
    watermark.pulled(10_000, 0, NONE);
    assertEquals(10_000, watermark.valueMs());
  }

  @Test
  public void behindABacklogItWaitsForTheRunOfFullPullsAndTakesItsOldestEvent() {
    BacklogWatermark watermark = new BacklogWatermark(0, 0);
    watermark.pulled(10_000, BacklogWatermark.FULL_PULL, 5_000);
    watermark.pulled(10_100, BacklogWatermark.FULL_PULL, 4_000); // a straggler handed out late
    assertEquals(0, watermark.valueMs());
    watermark.pulled(10_200, 10, 6_000);
    assertEquals(4_000, watermark.valueMs());
  }

  @Test
  public void aLongRunMovesItEveryRunSizeMessages() {
    BacklogWatermark watermark = new BacklogWatermark(0, 0);
    int pulls = BacklogWatermark.RUN_SIZE / BacklogWatermark.FULL_PULL;
    for (int i = 0; i < pulls; i++) {
      watermark.pulled(10_000 + i, BacklogWatermark.FULL_PULL, 1_000 + i);
    }
    assertEquals(1_000, watermark.valueMs());
  }

  @Test
  public void anOldStragglerNeverMovesItBack() {
    BacklogWatermark watermark = new BacklogWatermark(0, 0);
    watermark.pulled(10_000, 0, NONE);
    watermark.pulled(11_000, 1, 2_000);
    assertEquals(10_000, watermark.valueMs());
  }

  @Test
  public void messagesWithoutAnEventTimeDoNotHoldIt() {
    BacklogWatermark watermark = new BacklogWatermark(0, 0);
    watermark.pulled(10_000, 2, NONE);
    assertEquals(10_000, watermark.valueMs());
  }

  @Test
  public void aStartingReaderHoldsItWhereItStartedUntilTheLeasesOfItsPredecessorRanOut() {
    BacklogWatermark watermark = new BacklogWatermark(7_000, 20_000);
    watermark.pulled(10_000, 0, NONE);
    watermark.pulled(15_000, 5, 14_000);
    assertEquals(7_000, watermark.valueMs());
    watermark.pulled(20_000, 5, 8_000); // a message the dead reader had leased
    assertEquals(8_000, watermark.valueMs());
  }

  @Test
  public void eventTimesAreEpochMillisOrRfc3339() {
    assertEquals(Long.valueOf(1_700_000_000_123L), EventTimes.fromAttribute(Map.of("ts", "1700000000123"), "ts"));
    assertEquals(Long.valueOf(1_700_000_000_123L),
        EventTimes.fromAttribute(Map.of("ts", "2023-11-14T22:13:20.123Z"), "ts"));
    assertEquals(Long.valueOf(1_700_000_000_000L),
        EventTimes.fromAttribute(Map.of("ts", "2023-11-14T23:13:20+01:00"), "ts"));
  }

  @Test
  public void aMissingOrUnusableAttributeHasNoEventTime() {
    assertNull(EventTimes.fromAttribute(Map.of(), "ts"));
    assertNull(EventTimes.fromAttribute(Map.of("ts", "yesterday"), "ts"));
    assertNull(EventTimes.fromAttribute(Map.of("ts", String.valueOf(Long.MAX_VALUE)), "ts"));
    assertNull(EventTimes.fromAttribute(Map.of("ts", "1700000000123"), null));
  }
}
