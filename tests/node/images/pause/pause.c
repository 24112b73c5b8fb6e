/*
 * Stand-in for registry.k8s.io/pause:3.10 (no image registry is reachable here). It does what the official image's
 * program (kubernetes/build/pause/linux/pause.c) does: it is the first process of every pod sandbox, holds the
 * pod's namespaces open, reaps the zombies of containers that share its PID namespace, and exits 0 on SIGINT or
 * SIGTERM. Built static (gcc -Os -static) into an image FROM scratch running as 65535, like the official one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

static void shut_down(int signo) {
    fprintf(stderr, "Shutting down, got signal %d\n", signo);
    exit(0);
}

static void reap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcasecmp(argv[1], "-v") == 0) {
        printf("pause.c (beamstack stand-in for registry.k8s.io/pause:3.10)\n");
        return 0;
    }
    if (getpid() != 1) {
        fprintf(stderr, "Warning: pause should be the first process\n");
    }
    struct sigaction down = {.sa_handler = shut_down};
    struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &down, NULL) < 0 || sigaction(SIGTERM, &down, NULL) < 0 ||
        sigaction(SIGCHLD, &child, NULL) < 0) {
        perror("sigaction");
        return 1;
    }
    for (;;) {
        pause();
    }
}
