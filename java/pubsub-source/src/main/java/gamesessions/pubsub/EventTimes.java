package gamesessions.pubsub;

import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.Map;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.checkerframework.checker.nullness.qual.Nullable;

/** A message's event time, from its timestamp attribute. */
final class EventTimes {
  private EventTimes() {}

  /**
   * The attribute as Beam's Pub/Sub readers take it, epoch milliseconds or RFC 3339 (the job's
   * parse step accepts the same, {@code transforms/direct_pubsub.attribute_timestamp}); null when
   * it is missing, unparseable or outside Beam's timestamp range. Java's PubsubIO fails the bundle,
   * again and again, on such a message; here it goes on and the parse step dead-letters it.
   */
  static @Nullable Long fromAttribute(@Nullable Map<String, String> attributes, @Nullable String name) {
    if (name == null || attributes == null) {
      return null;
    }
    String value = attributes.get(name);
    if (value == null) {
      return null;
    }
    long millis;
    try {
      millis = Long.parseLong(value);
    } catch (NumberFormatException notEpochMillis) {
      try {
        millis = OffsetDateTime.parse(value).toInstant().toEpochMilli();
      } catch (DateTimeParseException | ArithmeticException notRfc3339) {
        return null;
      }
    }
    if (millis < BoundedWindow.TIMESTAMP_MIN_VALUE.getMillis()
        || millis > BoundedWindow.TIMESTAMP_MAX_VALUE.getMillis()) {
      return null;
    }
    return millis;
  }
}
