package apply

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/agent"
)

// serve runs the agent verb like `nivis agent disko` does and returns its
// events and final message.
func serve(t *testing.T, req disko.AgentRequest) ([]agent.Event, agent.Message) {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_ = agent.NewTable(Handlers()).Serve(context.Background(), disko.VerbDisko.Name, bytes.NewReader(in), &out)
	var events []agent.Event
	var last agent.Message
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m agent.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("agent wrote a non-protocol line %q: %v", sc.Text(), err)
		}
		if m.Type == "event" {
			events = append(events, *m.Event)
			continue
		}
		last = m
	}
	return events, last
}

func TestAgentVerbRefusesBadLayouts(t *testing.T) {
	_, m := serve(t, disko.AgentRequest{Layout: json.RawMessage(`{"disk": {"a": {"device": "/dev/x", "content": {"type": "gpt", "partitions": {"p": {"size": "1.5G"}}}}}}`), Mode: "format"})
	if m.Type != "error" || !strings.Contains(m.Error, `size "1.5G"`) || m.Code != 2 {
		t.Errorf("bad layout: %+v", m)
	}
	_, m = serve(t, disko.AgentRequest{Layout: json.RawMessage(`{}`), Mode: "explode"})
	if m.Type != "error" || !strings.Contains(m.Error, "unknown mode") {
		t.Errorf("bad mode: %+v", m)
	}
}

func TestAgentVerbOnLoop(t *testing.T) {
	requireRoot(t)
	node, _ := newLoop(t, 512<<20)
	raw, rep, err := disko.LayoutJSON([]byte(`apiVersion: nivis/v1alpha1
kind: Disko
disko:
  disk:
    main:
      device: /dev/disk/by-id/replaced-by-disks
      content:
        type: gpt
        partitions:
          root:
            size: 100%
            content: {type: filesystem, format: ext4, mountpoint: /}
`))
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.String())
	}
	root := filepath.Join(t.TempDir(), "mnt")
	req := disko.AgentRequest{Layout: raw, Mode: "destroy,format,mount", Root: root, Disks: map[string]string{"main": node}, Tables: true}

	// A dry run streams a skipped event per step and changes nothing.
	req.DryRun = true
	events, m := serve(t, req)
	if m.Type != "result" {
		t.Fatalf("dry run: %+v", m)
	}
	if sig, _ := probeNode(node); sig != nil {
		t.Fatalf("dry run wrote %s", sig)
	}
	if len(events) == 0 {
		t.Errorf("dry run sent no events")
	}

	req.DryRun = false
	events, m = serve(t, req)
	if m.Type != "result" {
		t.Fatalf("run: %+v", m)
	}
	var res disko.AgentResult
	if err := json.Unmarshal(m.Result, &res); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for _, e := range events {
		if e.Kind == "step" && e.Fields["status"] == "done" {
			steps++
		}
	}
	if steps == 0 || res.Result == nil || res.Result.Done != steps {
		t.Errorf("%d done step events, result %+v", steps, res.Result)
	}
	sig, _ := probeNode(node + "p1")
	if sig == nil || !strings.Contains(res.Fstab, "UUID="+sig.UUID+" / ext4 defaults 0 1") {
		t.Errorf("fstab does not name the new filesystem (%v):\n%s", sig, res.Fstab)
	}
	if _, err := os.Stat(root + "/lost+found"); err != nil {
		t.Errorf("not mounted: %v", err)
	}
}
