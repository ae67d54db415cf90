package redistest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/redistest"
)

func TestStartStopRestart(t *testing.T) {
	srv := redistest.Start(t)
	if !strings.HasPrefix(srv.URL, "redis://127.0.0.1:") || !strings.HasSuffix(srv.URL, "/0") {
		t.Errorf("URL %q, want redis://127.0.0.1:N/0", srv.URL)
	}
	c := srv.Client()
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Do(ctx, c.B().Ping().Build()).Error()
	}
	if err := ping(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	ctx := context.Background()
	if err := c.Do(ctx, c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := ping(); err == nil {
		t.Fatal("PING answered after Stop")
	}
	srv.Restart()
	if err := ping(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	// Persistence is off: a restart starts empty.
	if n, err := c.Do(ctx, c.B().Exists().Key("k").Build()).AsInt64(); err != nil || n != 0 {
		t.Errorf("EXISTS k after Restart: %d %v, want 0", n, err)
	}
}

func TestStartCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := redistest.StartCluster(t, 3)
	if len(c.Nodes) != 3 || strings.Count(c.URL, "addr=") != 2 {
		t.Fatalf("nodes %d, URL %q", len(c.Nodes), c.URL)
	}
	admin := c.Nodes[0].Client()
	info, err := admin.Do(context.Background(), admin.B().ClusterInfo().Build()).ToString()
	if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
		t.Errorf("CLUSTER INFO: %v\n%s", err, info)
	}
}
