package bot

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one sample is exact", []time.Duration{1234 * time.Microsecond}, 0.99, 1234 * time.Microsecond},
		{"two samples p50 is the lower", []time.Duration{ms, 9 * ms}, 0.5, ms},
		{"two samples p90 is the upper", []time.Duration{ms, 9 * ms}, 0.9, 9 * ms},
		{"sub-microsecond", []time.Duration{100, 200, 300}, 0.5, 300}, // one bucket, clamped to max
		{"negative counts as zero", []time.Duration{-ms}, 0.5, 0},
		{"q=0 is the minimum", []time.Duration{3 * ms, 5 * ms, 7 * ms}, 0, 3 * ms},
		{"q=1 is the maximum", []time.Duration{3 * ms, 5 * ms, 7 * ms}, 1, 7 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, d := range tt.samples {
				h.Add(d)
			}
			if got := h.Quantile(tt.q); !within(got, tt.want, 0.02) {
				t.Errorf("Quantile(%v) = %v, want %v ± 2%%", tt.q, got, tt.want)
			}
		})
	}
}

// within reports whether got is want ± rel (relative).
func within(got, want time.Duration, rel float64) bool {
	diff := float64(got - want)
	return diff <= rel*float64(want) && -diff <= rel*float64(want)
}

func TestHistogramUniform(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ { // 1 ms … 1 s
		h.Add(time.Duration(i) * time.Millisecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		if got := h.Quantile(tt.q); !within(got, tt.want, 0.02) {
			t.Errorf("p%v = %v, want %v ± 2%%", tt.q*100, got, tt.want)
		}
	}
	if h.Count() != 1000 {
		t.Errorf("Count = %d", h.Count())
	}
	h.Add(time.Hour)
	if len(h.counts) > 1200 {
		t.Errorf("%d buckets for samples up to an hour; memory is not bounded", len(h.counts))
	}
}

func TestHistogramMergeAndClone(t *testing.T) {
	var a, b Histogram
	for i := 1; i <= 50; i++ {
		a.Add(time.Duration(i) * time.Millisecond)
		b.Add(time.Duration(50+i) * time.Millisecond)
	}
	c := a.Clone()
	c.Merge(&b)
	c.Merge(new(Histogram))
	if c.Count() != 100 || a.Count() != 50 {
		t.Fatalf("counts: merged %d, original %d", c.Count(), a.Count())
	}
	if got := c.Quantile(0.5); !within(got, 50*time.Millisecond, 0.02) {
		t.Errorf("merged p50 = %v", got)
	}
	if got := c.Quantile(1); got != 100*time.Millisecond {
		t.Errorf("merged max = %v", got)
	}
	if got := a.Quantile(1); got != 50*time.Millisecond {
		t.Errorf("merging into a clone changed the original: max %v", got)
	}
	var empty Histogram
	empty.Merge(&a)
	if empty.Quantile(0) != time.Millisecond {
		t.Errorf("merge into empty: min %v", empty.Quantile(0))
	}
}

func TestStatsSnapshotIsACopy(t *testing.T) {
	start := time.Unix(1000, 0)
	st := NewStats(3, start)
	st.Inc(LoginOK, 2)
	st.Inc(LoginFailed, 1)
	st.Inc(Counter(99), 5) // unknown: ignored
	st.Online(2)
	st.Error(ErrLogin, errors.New("bot-3: 401 Unauthorized: bad account or password"))
	st.Error(ErrLogin, errors.New("second"))
	st.Observe(LatencyEnter, 2*time.Millisecond)

	s := st.Snapshot(start.Add(1500 * time.Millisecond))
	st.Error(ErrKicked, nil)
	st.Observe(LatencyEnter, time.Second)
	st.Inc(LoginOK, 1)

	if s.LoginOK != 2 || s.LoginFailed != 1 || s.Online != 2 || s.Elapsed != 1500*time.Millisecond {
		t.Errorf("snapshot %+v", s)
	}
	if len(s.Errors) != 1 || s.Errors[ErrLogin] != 2 || !strings.HasPrefix(s.FirstError[ErrLogin], "bot-3: 401") {
		t.Errorf("errors %v, first %v", s.Errors, s.FirstError)
	}
	if s.Latency[LatencyEnter].Count() != 1 {
		t.Error("a later Observe changed the snapshot")
	}
	if !s.Failed() {
		t.Error("a failed login does not fail the run")
	}
	if (Summary{LoginOK: 3, EnterOK: 3}).Failed() {
		t.Error("a clean run failed")
	}
}

func TestSummaryFormat(t *testing.T) {
	st := NewStats(10, time.Unix(0, 0))
	st.Inc(LoginOK, 10)
	st.Inc(EnterOK, 9)
	st.Inc(EnterFailed, 1)
	st.Inc(Sent, 42)
	st.Inc(ChatSeen, 7)
	for i := 1; i <= 100; i++ {
		st.Observe(LatencyChat, time.Duration(i)*time.Millisecond)
	}
	st.Error(ErrEnter, errors.New("bot-4: lobby refused: name taken"))
	var w bytes.Buffer
	st.Snapshot(time.Unix(12, 0)).Format(&w, "bot | ")
	out := w.String()
	for _, want := range []string{
		"bot | 12s  bots 10: logged in 10 (failed 0), entered 9 (failed 1)",
		"messages sent 42, received 0; chat lines seen 7; matches 0",
		"latency chat  p50 5", "(n=100)",
		"errors: enter 1", "first enter: bot-4: lobby refused: name taken",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(line, "bot | ") {
			t.Errorf("line without the prefix: %q", line)
		}
	}

	w.Reset()
	NewStats(1, time.Unix(0, 0)).Snapshot(time.Unix(0, 0)).Format(&w, "")
	if !strings.Contains(w.String(), "errors: none") || strings.Contains(w.String(), "latency") {
		t.Errorf("empty summary:\n%s", w.String())
	}
}
