// CoreDNS v1.12.1 with the plugins a cluster's DNS uses (kubeadm's Corefile: errors, health, ready, kubernetes,
// prometheus, forward, cache, loop, reload, loadbalance; and log), built by scripts/e2e-tools.sh from CoreDNS's own
// module. This is CoreDNS's documented way to choose plugins at compile time (its coredns.go imports core/plugin,
// which imports every plugin): the same code, without the cloud DNS plugins whose SDKs (Azure, AWS, GCP, about
// 1 GB of modules) would triple the build.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
