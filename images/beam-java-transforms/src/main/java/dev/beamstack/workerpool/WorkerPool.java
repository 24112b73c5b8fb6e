package dev.beamstack.workerpool;

import java.io.IOException;
import java.time.Duration;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StartWorkerRequest;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StartWorkerResponse;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StopWorkerRequest;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StopWorkerResponse;
import org.apache.beam.model.fnexecution.v1.BeamFnExternalWorkerPoolGrpc.BeamFnExternalWorkerPoolImplBase;
import org.apache.beam.model.fnexecution.v1.ProvisionApi.GetProvisionInfoRequest;
import org.apache.beam.model.fnexecution.v1.ProvisionApi.ProvisionInfo;
import org.apache.beam.model.fnexecution.v1.ProvisionServiceGrpc;
import org.apache.beam.model.pipeline.v1.Endpoints.ApiServiceDescriptor;
import org.apache.beam.sdk.fn.channel.AddHarnessIdInterceptor;
import org.apache.beam.sdk.fn.channel.ManagedChannelFactory;
import org.apache.beam.sdk.fn.server.FnService;
import org.apache.beam.sdk.fn.server.GrpcFnServer;
import org.apache.beam.sdk.fn.server.ServerFactory;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.util.construction.PipelineOptionsTranslation;
import org.apache.beam.vendor.grpc.v1p60p1.io.grpc.ManagedChannel;
import org.apache.beam.vendor.grpc.v1p60p1.io.grpc.stub.StreamObserver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Java SDK worker pool: Beam's {@code BeamFnExternalWorkerPool} service, which a runner's EXTERNAL environment
 * (Flink's TaskManagers, at localhost:50001) calls to start one SDK harness per executable stage. Each harness runs in
 * a thread of this JVM, on this JVM's classpath.
 *
 * <p>Modelled on Beam's {@code org.apache.beam.fn.harness.ExternalWorkerService} (2.62), without its traps:
 *
 * <ul>
 *   <li>Each worker gets its own {@link PipelineOptions}. A harness shutting down also shuts down the executor cached
 *       in its options, so with one shared options object (Beam's way) every worker after the first fails.
 *   <li>A harness that fails to start, with any {@link Throwable} or by ending early, is reported in StartWorker's
 *       answer, which fails the runner's task. Beam's answers before it knows, and catches only {@link Exception}:
 *       an {@link Error} killed the thread silently and the runner waited for the worker forever.
 *   <li>{@link #main} checks that a harness can initialise before serving, and exits with status 1 if not.
 * </ul>
 */
public final class WorkerPool extends BeamFnExternalWorkerPoolImplBase implements FnService {

  private static final Logger LOG = LoggerFactory.getLogger(WorkerPool.class);

  static final int DEFAULT_PORT = 50001;
  static final String PIPELINE_OPTIONS_ENV = "PIPELINE_OPTIONS";
  static final String DEFAULT_PIPELINE_OPTIONS = "{\"options\":{}}";
  static final String START_CHECK_ENV = "BEAMSTACK_WORKER_START_CHECK_MS";
  static final Duration DEFAULT_START_CHECK = Duration.ofMillis(1500);

  // Bounds the one call made before the harness starts, so that a silent runner cannot hang StartWorker.
  private static final Duration PROVISION_DEADLINE = Duration.ofSeconds(30);

  private final Supplier<PipelineOptions> optionsFactory;
  private final Harness harness;
  private final Duration startCheck;

  /**
   * @param optionsFactory makes the options of one worker; called once per worker, it must return a new object
   * @param harness runs one worker's SDK harness
   * @param startCheck how long StartWorker waits for the harness to fail before it answers success
   */
  public WorkerPool(Supplier<PipelineOptions> optionsFactory, Harness harness, Duration startCheck) {
    this.optionsFactory = optionsFactory;
    this.harness = harness;
    this.startCheck = startCheck;
  }

  /** Makes fresh options from their JSON form (as in env PIPELINE_OPTIONS) at each call. */
  static Supplier<PipelineOptions> optionsFrom(String json) {
    return () -> PipelineOptionsTranslation.fromJson(json);
  }

  @Override
  public void startWorker(
      StartWorkerRequest request, StreamObserver<StartWorkerResponse> responseObserver) {
    LOG.info(
        "Starting worker {} pointing at {}.",
        request.getWorkerId(),
        request.getControlEndpoint().getUrl());
    String error = start(request);
    responseObserver.onNext(StartWorkerResponse.newBuilder().setError(error).build());
    responseObserver.onCompleted();
  }

  @Override
  public void stopWorker(
      StopWorkerRequest request, StreamObserver<StopWorkerResponse> responseObserver) {
    // Nothing to do: a harness ends by itself when the runner closes its control stream.
    responseObserver.onNext(StopWorkerResponse.getDefaultInstance());
    responseObserver.onCompleted();
  }

  @Override
  public void close() {}

  /**
   * Starts the worker's harness in a thread of its own and waits for the start check. Returns the error for the
   * runner, or "" when the harness is still running at the end of the check.
   */
  private String start(StartWorkerRequest request) {
    String workerId = request.getWorkerId();
    PipelineOptions options;
    WorkerEndpoints endpoints;
    try {
      options = optionsFactory.get();
      endpoints = WorkerEndpoints.of(request);
    } catch (RuntimeException e) {
      LOG.error("Cannot start worker {}.", workerId, e);
      return failure(workerId, e);
    }

    CompletableFuture<Void> exit = new CompletableFuture<>();
    Thread thread =
        new Thread(
            () -> {
              try {
                harness.run(
                    workerId,
                    options,
                    endpoints.runnerCapabilities(),
                    endpoints.logging(),
                    endpoints.control());
                LOG.info("Worker {} finished.", workerId);
                exit.complete(null);
              } catch (Throwable t) {
                // Logged here too, for a failure after the start check, when no one waits on `exit` any more.
                LOG.error("Worker {} failed.", workerId, t);
                exit.completeExceptionally(t);
              }
            },
            "SDK-worker-" + workerId);
    // Daemon, as in Beam: a harness must not keep the pool's JVM alive once it is told to stop.
    thread.setDaemon(true);
    thread.start();

    // A harness that cannot start fails within moments (a missing class, a runner it cannot reach); one still
    // running after the check is taken as started, and from then on the runner sees what becomes of it.
    try {
      exit.get(startCheck.toMillis(), TimeUnit.MILLISECONDS);
      // FnHarness logs and swallows most failures, an unreachable runner among them, and returns. The runner cannot
      // have closed this harness before it had our answer, so one that ended already has failed.
      LOG.error("Worker {} ended during its start check.", workerId);
      return "Java SDK worker "
          + workerId
          + " ended within "
          + startCheck.toMillis()
          + " ms of its start, before the runner could use it; the worker pool's log says why (often: the"
          + " runner's endpoints cannot be reached from the pool)";
    } catch (TimeoutException e) {
      return "";
    } catch (ExecutionException e) {
      return failure(workerId, e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "worker pool interrupted while starting Java SDK worker " + workerId;
    }
  }

  private static String failure(String workerId, Throwable cause) {
    return "Java SDK worker " + workerId + " failed to start: " + describe(cause);
  }

  private static String describe(Throwable t) {
    Throwable cause = t.getCause();
    return cause == null || cause == t ? t.toString() : t + " (caused by " + cause + ")";
  }

  /** The endpoints and runner capabilities a worker's harness is started with. */
  private record WorkerEndpoints(
      ApiServiceDescriptor logging, ApiServiceDescriptor control, Set<String> runnerCapabilities) {

    /**
     * Those of the request, or, where it names a provision service, those that service provides (as Beam's
     * ExternalWorkerService does).
     */
    static WorkerEndpoints of(StartWorkerRequest request) {
      if (!request.hasProvisionEndpoint()) {
        return new WorkerEndpoints(
            request.getLoggingEndpoint(), request.getControlEndpoint(), Collections.emptySet());
      }
      ManagedChannel channel =
          ManagedChannelFactory.createDefault()
              .withInterceptors(List.of(AddHarnessIdInterceptor.create(request.getWorkerId())))
              .forDescriptor(request.getProvisionEndpoint());
      try {
        ProvisionInfo info =
            ProvisionServiceGrpc.newBlockingStub(channel)
                .withDeadlineAfter(PROVISION_DEADLINE.toMillis(), TimeUnit.MILLISECONDS)
                .getProvisionInfo(GetProvisionInfoRequest.getDefaultInstance())
                .getInfo();
        return new WorkerEndpoints(
            info.hasLoggingEndpoint() ? info.getLoggingEndpoint() : request.getLoggingEndpoint(),
            info.hasControlEndpoint() ? info.getControlEndpoint() : request.getControlEndpoint(),
            new HashSet<>(info.getRunnerCapabilitiesList()));
      } finally {
        channel.shutdown();
      }
    }
  }

  /** Serves the pool on every interface at the port (0: a free one, which the server's port then tells). */
  static GrpcFnServer<WorkerPool> serve(WorkerPool pool, int port) throws IOException {
    // Beam's default server factory binds the URL's port on all interfaces; the host part only names the service.
    ApiServiceDescriptor url = ApiServiceDescriptor.newBuilder().setUrl("localhost:" + port).build();
    return GrpcFnServer.create(pool, url, ServerFactory.createDefault());
  }

  /**
   * Serves the pool at the port given as the first argument (default 50001) until the JVM is stopped.
   *
   * <p>Environment: PIPELINE_OPTIONS, the options every harness starts from, as JSON (default no options);
   * BEAMSTACK_WORKER_START_CHECK_MS, the start check in milliseconds (default 1500).
   */
  public static void main(String[] args) throws InterruptedException {
    GrpcFnServer<WorkerPool> server;
    try {
      server = startServing(args, System.getenv());
    } catch (StartupException e) {
      // One line on stderr (causes' messages may span several) and a failed container, which Kubernetes
      // shows and restarts.
      String reason = e.getMessage().replaceAll("\\s*\\R\\s*", " ");
      System.err.println("worker-pool: cannot start: " + reason);
      System.exit(1);
      return;
    }
    Runtime.getRuntime()
        .addShutdownHook(new Thread(() -> closeQuietly(server), "worker-pool-shutdown"));
    LOG.info(
        "Java SDK worker pool serving on port {} (all interfaces).", server.getServer().getPort());
    server.getServer().awaitTermination();
  }

  private static GrpcFnServer<WorkerPool> startServing(String[] args, Map<String, String> env) {
    int port = args.length > 0 ? parsePort(args[0]) : DEFAULT_PORT;
    String optionsJson = env.getOrDefault(PIPELINE_OPTIONS_ENV, DEFAULT_PIPELINE_OPTIONS);
    Duration startCheck = parseStartCheck(env.get(START_CHECK_ENV));
    checkHarnessInitialises();
    Supplier<PipelineOptions> options = optionsFrom(optionsJson);
    try {
      options.get();
    } catch (RuntimeException e) {
      throw new StartupException(PIPELINE_OPTIONS_ENV + " is not valid pipeline options JSON: " + describe(e));
    }
    try {
      return serve(new WorkerPool(options, Harness.FN_HARNESS, startCheck), port);
    } catch (IOException e) {
      throw new StartupException("cannot serve on port " + port + ": " + describe(e));
    }
  }

  /**
   * Fails if a harness could not initialise. Its Caches class needs jamm when first loaded; without it every worker
   * would fail, so it is better to fail here, once and visibly.
   */
  private static void checkHarnessInitialises() {
    try {
      Class.forName("org.apache.beam.fn.harness.Caches", true, WorkerPool.class.getClassLoader());
    } catch (ClassNotFoundException | LinkageError e) {
      throw new StartupException(
          "the Java SDK harness cannot initialise (is jamm on the classpath?): " + describe(e));
    }
  }

  private static int parsePort(String arg) {
    try {
      int port = Integer.parseInt(arg);
      if (port >= 0 && port <= 65535) {
        return port;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new StartupException("not a port: " + arg);
  }

  private static Duration parseStartCheck(String value) {
    if (value == null || value.isBlank()) {
      return DEFAULT_START_CHECK;
    }
    try {
      long millis = Long.parseLong(value.trim());
      if (millis >= 0) {
        return Duration.ofMillis(millis);
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new StartupException(START_CHECK_ENV + " is not a number of milliseconds: " + value);
  }

  private static void closeQuietly(GrpcFnServer<WorkerPool> server) {
    try {
      server.close();
    } catch (Exception e) {
      LOG.warn("Closing the worker pool's server failed.", e);
    }
  }

  /** A reason not to start, told in one line. */
  private static final class StartupException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    StartupException(String message) {
      super(message);
    }
  }
}
