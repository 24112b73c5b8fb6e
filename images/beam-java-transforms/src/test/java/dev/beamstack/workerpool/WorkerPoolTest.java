package dev.beamstack.workerpool;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNotSame;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StartWorkerRequest;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StartWorkerResponse;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StopWorkerRequest;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StopWorkerResponse;
import org.apache.beam.model.fnexecution.v1.BeamFnExternalWorkerPoolGrpc;
import org.apache.beam.model.fnexecution.v1.BeamFnExternalWorkerPoolGrpc.BeamFnExternalWorkerPoolBlockingStub;
import org.apache.beam.model.pipeline.v1.Endpoints.ApiServiceDescriptor;
import org.apache.beam.sdk.fn.server.GrpcFnServer;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.vendor.grpc.v1p60p1.io.grpc.ManagedChannel;
import org.apache.beam.vendor.grpc.v1p60p1.io.grpc.ManagedChannelBuilder;
import org.junit.After;
import org.junit.Test;

/** The worker pool over a real gRPC server and client, with a fake harness. */
public class WorkerPoolTest {

  // Every call has a deadline, so that a pool that hangs fails the test instead of hanging it.
  private static final long DEADLINE_SECONDS = 20;

  private GrpcFnServer<WorkerPool> server;
  private ManagedChannel channel;
  private final CountDownLatch release = new CountDownLatch(1);

  @After
  public void tearDown() throws Exception {
    release.countDown();
    if (channel != null) {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    if (server != null) {
      server.close();
    }
  }

  private BeamFnExternalWorkerPoolBlockingStub serve(Harness harness, Duration startCheck)
      throws IOException {
    WorkerPool pool =
        new WorkerPool(
            WorkerPool.optionsFrom(WorkerPool.DEFAULT_PIPELINE_OPTIONS), harness, startCheck);
    server = WorkerPool.serve(pool, 0);
    channel =
        ManagedChannelBuilder.forAddress("localhost", server.getServer().getPort())
            .usePlaintext()
            .build();
    return BeamFnExternalWorkerPoolGrpc.newBlockingStub(channel);
  }

  private static StartWorkerResponse startWorker(
      BeamFnExternalWorkerPoolBlockingStub stub, String workerId) {
    ApiServiceDescriptor runner = ApiServiceDescriptor.newBuilder().setUrl("localhost:1").build();
    return stub.withDeadlineAfter(DEADLINE_SECONDS, TimeUnit.SECONDS)
        .startWorker(
            StartWorkerRequest.newBuilder()
                .setWorkerId(workerId)
                .setControlEndpoint(runner)
                .setLoggingEndpoint(runner)
                .build());
  }

  private static final class Started {
    final String threadName;
    final PipelineOptions options;

    Started(String threadName, PipelineOptions options) {
      this.threadName = threadName;
      this.options = options;
    }
  }

  @Test
  public void eachWorkerGetsItsOwnOptions() throws Exception {
    BlockingQueue<Started> started = new LinkedBlockingQueue<>();
    BeamFnExternalWorkerPoolBlockingStub stub =
        serve(
            (id, options, capabilities, logging, control) -> {
              started.add(new Started(Thread.currentThread().getName(), options));
              release.await();
            },
            Duration.ofMillis(200));

    assertEquals("", startWorker(stub, "1-1").getError());
    assertEquals("", startWorker(stub, "2-1").getError());

    Started first = started.poll(DEADLINE_SECONDS, TimeUnit.SECONDS);
    Started second = started.poll(DEADLINE_SECONDS, TimeUnit.SECONDS);
    assertNotNull(first);
    assertNotNull(second);
    assertEquals("SDK-worker-1-1", first.threadName);
    assertEquals("SDK-worker-2-1", second.threadName);
    assertNotSame(first.options, second.options);
  }

  @Test
  public void harnessThatCannotStartIsReportedToTheRunner() throws Exception {
    Duration startCheck = Duration.ofSeconds(10);
    BeamFnExternalWorkerPoolBlockingStub stub =
        serve(
            (id, options, capabilities, logging, control) -> {
              throw new NoClassDefFoundError("org/github/jamm/MemoryMeter");
            },
            startCheck);

    long begin = System.nanoTime();
    String error = startWorker(stub, "3-1").getError();
    Duration took = Duration.ofNanos(System.nanoTime() - begin);

    assertTrue(error, error.contains("3-1"));
    assertTrue(error, error.contains("org/github/jamm/MemoryMeter"));
    assertTrue("answered only after " + took, took.compareTo(startCheck) < 0);
  }

  @Test
  public void harnessThatEndsDuringTheCheckIsReportedToTheRunner() throws Exception {
    // FnHarness returns normally from most failures (it logs them), an unreachable runner among them.
    BeamFnExternalWorkerPoolBlockingStub stub =
        serve((id, options, capabilities, logging, control) -> {}, Duration.ofSeconds(10));

    String error = startWorker(stub, "6-1").getError();

    assertTrue(error, error.contains("6-1"));
    assertTrue(error, error.contains("ended"));
  }

  @Test
  public void harnessStillRunningAfterTheCheckIsStarted() throws Exception {
    Duration startCheck = Duration.ofMillis(300);
    BeamFnExternalWorkerPoolBlockingStub stub =
        serve((id, options, capabilities, logging, control) -> release.await(), startCheck);

    long begin = System.nanoTime();
    String error = startWorker(stub, "4-1").getError();
    Duration took = Duration.ofNanos(System.nanoTime() - begin);

    assertEquals("", error);
    assertTrue("answered after only " + took, took.compareTo(startCheck) >= 0);
    assertTrue("answered only after " + took, took.compareTo(Duration.ofSeconds(10)) < 0);
  }

  @Test
  public void stopWorkerAnswers() throws Exception {
    BeamFnExternalWorkerPoolBlockingStub stub =
        serve((id, options, capabilities, logging, control) -> {}, Duration.ofMillis(300));

    StopWorkerResponse response =
        stub.withDeadlineAfter(DEADLINE_SECONDS, TimeUnit.SECONDS)
            .stopWorker(StopWorkerRequest.newBuilder().setWorkerId("5-1").build());

    assertEquals("", response.getError());
  }
}
