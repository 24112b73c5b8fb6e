package dev.beamstack.workerpool;

import java.util.Set;
import org.apache.beam.fn.harness.FnHarness;
import org.apache.beam.model.pipeline.v1.Endpoints.ApiServiceDescriptor;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * Runs one SDK harness until the runner closes it. An interface so that tests can run {@link
 * WorkerPool} without a runner to connect to.
 */
@FunctionalInterface
public interface Harness {

  /** Beam's Java SDK harness: connects to the runner's endpoints and blocks until it is done. */
  Harness FN_HARNESS =
      (workerId, options, runnerCapabilities, logging, control) ->
          // No status endpoint: Flink's EXTERNAL environment does not offer one.
          FnHarness.main(workerId, options, runnerCapabilities, logging, control, null);

  void run(
      String workerId,
      PipelineOptions options,
      Set<String> runnerCapabilities,
      ApiServiceDescriptor loggingEndpoint,
      ApiServiceDescriptor controlEndpoint)
      throws Exception;
}
