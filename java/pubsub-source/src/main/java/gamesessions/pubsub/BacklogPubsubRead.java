package gamesessions.pubsub;

import java.util.Map;
import org.apache.beam.sdk.expansion.ExternalTransformRegistrar;
import org.apache.beam.sdk.io.Read;
import org.apache.beam.sdk.transforms.ExternalTransformBuilder;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * {@link BacklogPubsubSource} for Python, through Beam's expansion service (registered in
 * META-INF/services): {@code transforms/pubsub.py} calls it by {@link #URN} with the fields of
 * {@link Configuration}. Expanded with {@code --experiments=use_deprecated_read}, it is a primitive
 * read that Flink checkpoints with its {@code UnboundedSourceWrapper}.
 */
public final class BacklogPubsubRead implements ExternalTransformRegistrar {
  public static final String URN = "game_sessions:pubsub_read_with_backlog_watermark:v1";

  @Override
  public Map<String, ExternalTransformBuilder<?, ?, ?>> knownBuilderInstances() {
    return Map.of(URN, new Builder());
  }

  /** Filled by the expansion service: field {@code timestamp_attribute} -> setTimestampAttribute. */
  public static final class Configuration {
    private @Nullable String subscription;
    private @Nullable String timestampAttribute;

    public void setSubscription(String subscription) {
      this.subscription = subscription;
    }

    public void setTimestampAttribute(@Nullable String timestampAttribute) {
      this.timestampAttribute = timestampAttribute;
    }
  }

  static final class Builder
      implements ExternalTransformBuilder<Configuration, PBegin, PCollection<byte[]>> {
    @Override
    public PTransform<PBegin, PCollection<byte[]>> buildExternal(Configuration configuration) {
      if (configuration.subscription == null) {
        throw new IllegalArgumentException(URN + " needs a subscription, projects/P/subscriptions/S");
      }
      return Read.from(new BacklogPubsubSource(configuration.subscription, configuration.timestampAttribute));
    }
  }
}
