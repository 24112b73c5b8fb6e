// The CEL benchmark's reference side: cel-go in Kubernetes' own CEL environment
// (k8s.io/apiserver/pkg/cel/environment, the base environment ValidatingAdmissionPolicy compiles in: its
// libraries, OptOptimize, cost tracking with Kubernetes' estimator, the per-call cost limit), over the shared input
// that `bench-cel --emit-input` writes. Each expression is compiled once and its program built as the admission
// plugin builds it (InterruptCheckFrequency 100); the variables are converted once into a prebuilt activation; the
// timed loop calls ContextEval, as the admission plugin does per expression.
//
//	go build -o cel-go-bench . && ./cel-go-bench -input cel-input.json
//
// Prints one JSON line per expression: {"impl": "go", "name", "ns" (median of the repetitions), "reps_ns", ...},
// the same format as bench-cel.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
	"k8s.io/apimachinery/pkg/api/resource"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"
)

// The variables every policy expression may use (webhook/src/policy/runtime.rs VARIABLES), all dynamically typed
// as ValidatingAdmissionPolicy declares object and oldObject without a schema.
var variableNames = []string{"object", "oldObject", "request", "namespaceObject", "variables", "tenant", "usage",
	"demand", "runnerSpec", "kind", "containers", "images", "volumes"}

const quantityTag = "@quantity"

type entry struct {
	Name       string `json:"name"`
	Expression string `json:"expression"`
}

type input struct {
	Variables   map[string]json.RawMessage `json:"variables"`
	Expressions []entry                    `json:"expressions"`
}

func main() {
	path := flag.String("input", "", "the shared input (bench-cel --emit-input FILE)")
	window := flag.Float64("window", 0.2, "minimum time of one repetition of one expression, seconds")
	repeats := flag.Int("repeats", 3, "repetitions per expression; the line reports their median")
	selected := flag.String("select", "", "only the expressions with these indexes, START:END (END exclusive)")
	mode := flag.String("mode", "kubernetes", "kubernetes: Kubernetes' CEL environment and evaluation (cost "+
		"tracking, cost limit, ContextEval); plain: cel-go alone with the same libraries, no cost tracking, Eval")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the timed loops to this file")
	flag.Parse()
	if *path == "" {
		fail("give -input FILE")
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		fail(err.Error())
	}
	var in input
	if err := json.Unmarshal(data, &in); err != nil {
		fail("input JSON: " + err.Error())
	}

	if *mode != "kubernetes" && *mode != "plain" {
		fail("-mode kubernetes or plain")
	}
	kubernetes := *mode == "kubernetes"
	env, err := newEnv(kubernetes)
	if err != nil {
		fail("environment: " + err.Error())
	}
	// The activation is built once: every variable converted to a CEL value (maps and lists wrap the decoded JSON
	// and convert their elements as they are read, as Kubernetes' unstructured objects do).
	bindings := map[string]any{}
	for name, raw := range in.Variables {
		value, err := decode(raw)
		if err != nil {
			fail(name + ": " + err.Error())
		}
		bindings[name] = types.DefaultTypeAdapter.NativeToValue(value)
	}
	activation, err := interpreter.NewActivation(bindings)
	if err != nil {
		fail(err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
	defer cancel()

	if *profile != "" {
		file, err := os.Create(*profile)
		if err != nil {
			fail(err.Error())
		}
		if err := pprof.StartCPUProfile(file); err != nil {
			fail(err.Error())
		}
		defer pprof.StopCPUProfile()
	}
	start, end := selectRange(*selected, len(in.Expressions))
	out := json.NewEncoder(os.Stdout)
	for index := start; index < end; index++ {
		e := in.Expressions[index]
		impl := "go"
		if !kubernetes {
			impl = "go-plain"
		}
		line := map[string]any{"kind": "cel", "impl": impl, "index": index, "name": e.Name}
		ast, issues := env.Compile(e.Expression)
		if issues != nil && issues.Err() != nil {
			line["error"] = "compile: " + issues.Err().Error()
			_ = out.Encode(line)
			continue
		}
		var program cel.Program
		if kubernetes {
			program, err = env.Program(ast, cel.InterruptCheckFrequency(100))
		} else {
			program, err = env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		}
		if err != nil {
			line["error"] = "program: " + err.Error()
			_ = out.Encode(line)
			continue
		}
		evaluate := func() (ref.Val, error) {
			result, _, err := program.Eval(activation)
			return result, err
		}
		if kubernetes {
			evaluate = func() (ref.Val, error) {
				result, _, err := program.ContextEval(ctx, activation)
				return result, err
			}
		}
		result, err := evaluate()
		if err != nil {
			line["error"] = "evaluate: " + err.Error()
			_ = out.Encode(line)
			continue
		}
		line["result"] = toJSON(result)
		iterations, reps := measure(func() {
			_, _ = evaluate()
		}, time.Duration(*window*float64(time.Second)), *repeats)
		line["iterations"] = iterations
		line["reps_ns"] = reps
		line["ns"] = median(reps)
		_ = out.Encode(line)
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "cel-go-bench: "+message)
	os.Exit(2)
}

// newEnv is Kubernetes' base CEL environment for expressions, with the policies' variables and the one function
// functions of ours they call that Kubernetes lacks (normalizeImage, quantity.asString).
//
// Without kubernetes: cel-go's standard environment with only the libraries the expressions need (Kubernetes'
// strings extension and Quantity), no cost tracking.
func newEnv(kubernetes bool) (*cel.Env, error) {
	var base *cel.Env
	if kubernetes {
		base = environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).NewExpressionsEnv()
	} else {
		var err error
		base, err = cel.NewEnv(ext.Strings(ext.StringsVersion(2)), library.Quantity(),
			cel.CrossTypeNumericComparisons(true), cel.DefaultUTCTimeZone(true))
		if err != nil {
			return nil, err
		}
	}
	options := []cel.EnvOption{
		cel.Function("normalizeImage", cel.Overload("normalizeImage_string", []*cel.Type{cel.StringType},
			cel.StringType, cel.UnaryBinding(func(value ref.Val) ref.Val {
				return types.String(normalizeImage(string(value.(types.String))))
			}))),
		// Ours too: Kubernetes' Quantity has no string form in CEL; the budget messages print one.
		cel.Function("asString", cel.MemberOverload("quantity_asString", []*cel.Type{apiservercel.QuantityType},
			cel.StringType, cel.UnaryBinding(func(value ref.Val) ref.Val {
				switch quantity := value.(type) {
				case apiservercel.Quantity:
					return types.String(quantity.Quantity.String())
				case *apiservercel.Quantity:
					return types.String(quantity.Quantity.String())
				}
				return types.MaybeNoSuchOverloadErr(value)
			}))),
	}
	for _, name := range variableNames {
		options = append(options, cel.Variable(name, cel.DynType))
	}
	return base.Extend(options...)
}

// normalizeImage is webhook/src/validate/images.rs normalize_image: Docker's implicit registry spelled out.
func normalizeImage(image string) string {
	image = strings.TrimSpace(image)
	first, rest, found := strings.Cut(image, "/")
	switch {
	case found && (strings.Contains(first, ".") || strings.Contains(first, ":") || first == "localhost"):
		if first == "index.docker.io" {
			first = "docker.io"
		}
		return first + "/" + rest
	case found:
		return "docker.io/" + image
	default:
		return "docker.io/library/" + image
	}
}

// decode reads JSON as Kubernetes' unstructured objects hold it (integers as int64, other numbers as float64),
// with {"@quantity": s} as Kubernetes' CEL Quantity.
func decode(raw json.RawMessage) (any, error) {
	decoder := json.NewDecoder(strings.NewReader(string(raw)))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		return nil, err
	}
	return convert(value)
}

func convert(value any) (any, error) {
	switch v := value.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return i, nil
		}
		return strconv.ParseFloat(string(v), 64)
	case []any:
		for i := range v {
			converted, err := convert(v[i])
			if err != nil {
				return nil, err
			}
			v[i] = converted
		}
		return v, nil
	case map[string]any:
		if text, ok := v[quantityTag].(string); ok && len(v) == 1 {
			q, err := resource.ParseQuantity(text)
			if err != nil {
				return nil, err
			}
			return apiservercel.Quantity{Quantity: &q}, nil
		}
		for key, item := range v {
			converted, err := convert(item)
			if err != nil {
				return nil, err
			}
			v[key] = converted
		}
		return v, nil
	default:
		return value, nil
	}
}

// toJSON renders a result for the side-by-side check of the two implementations' answers.
func toJSON(value ref.Val) any {
	switch v := value.(type) {
	case apiservercel.Quantity:
		return v.Quantity.String()
	case types.Null:
		return nil
	case types.Bool, types.Int, types.Uint, types.Double, types.String:
		return v.Value()
	case traits.Mapper:
		out := map[string]any{}
		for it := v.Iterator(); it.HasNext() == types.True; {
			key := it.Next()
			out[fmt.Sprint(key.Value())] = toJSON(v.Get(key))
		}
		return out
	case traits.Lister:
		out := []any{}
		for it := v.Iterator(); it.HasNext() == types.True; {
			out = append(out, toJSON(it.Next()))
		}
		return out
	default:
		return fmt.Sprintf("<%s>", value.Type().TypeName())
	}
}

func selectRange(text string, count int) (int, int) {
	if text == "" {
		return 0, count
	}
	first, last, _ := strings.Cut(text, ":")
	start, err := strconv.Atoi(first)
	if err != nil {
		start = 0
	}
	end, err := strconv.Atoi(last)
	if err != nil || end > count {
		end = count
	}
	return min(start, count), end
}

// measure calibrates a batch size that takes at least window, then times repeats batches: ns per call in each.
func measure(f func(), window time.Duration, repeats int) (int, []float64) {
	timed := func(n int) time.Duration {
		started := time.Now()
		for i := 0; i < n; i++ {
			f()
		}
		return time.Since(started)
	}
	n := 1
	for {
		took := timed(n)
		if took >= window/10 {
			n = int(float64(n)*window.Seconds()/took.Seconds()) + 1
			break
		}
		if took < window/1000 {
			n *= 10
		} else {
			n *= 2
		}
	}
	reps := make([]float64, max(repeats, 1))
	for i := range reps {
		reps[i] = float64(timed(n).Nanoseconds()) / float64(n)
	}
	return n, reps
}

func median(values []float64) float64 {
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	middle := len(sorted) / 2
	if len(sorted)%2 == 1 {
		return sorted[middle]
	}
	return (sorted[middle-1] + sorted[middle]) / 2
}
