package broker

// Disk-fault injection for the chaos harness, only with the hidden
// --debug-fault-fs flag (config.Config.DebugFaultFS): every partition log
// then runs on vfs.Fault, which keeps unsynced data in process memory (a
// SIGKILL loses it, as a power loss would), and these routes, served on
// http_addr, fault that filesystem. Without the flag they do not exist
// (404).
//
//	GET  /debug/fs                        faults in force, syncs, unsynced bytes
//	POST /debug/fs/stall[?writes=true]    fsyncs (and writes) block until resume
//	POST /debug/fs/resume                 release and stop stalling
//	POST /debug/fs/fail[?writes=true]     fsyncs (and writes) fail with EIO until heal
//	POST /debug/fs/heal                   stop failing
//
// A log whose fsync failed stays failed closed after heal (fsyncgate): only
// a restart of the broker reopens it from what is on disk.

import (
	"net/http"

	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/broker/config"
	"github.com/sluicemq/sluice/log/vfs"
)

// debugFS is the fault filesystem of --debug-fault-fs; its zero value is
// off.
type debugFS struct {
	fault *vfs.Fault
	lg    zerolog.Logger
}

func (d *debugFS) init(cfg config.Config, lg zerolog.Logger) {
	if !cfg.DebugFaultFS {
		return
	}
	d.fault = vfs.NewFault()
	d.lg = lg.With().Str("component", "debug-fault-fs").Logger()
	d.lg.Warn().Msg("partition logs keep unsynced data in process memory; disk faults are injected under /debug/fs (for testing only)")
}

// partitionFS is the filesystem partition logs open on: nil (the OS)
// unless --debug-fault-fs is set.
func (d *debugFS) partitionFS() vfs.FS {
	if d.fault == nil {
		return nil
	}
	return d.fault
}

func (b *Broker) registerDebugFSRoutes() {
	f := b.debugFS.fault
	if f == nil {
		return
	}
	act := func(name string, do func(r *http.Request)) func(*http.Request) (int, any, error) {
		return func(r *http.Request) (int, any, error) {
			do(r)
			st := f.Stats()
			b.debugFS.lg.Warn().Str("action", name).Bool("stalled", st.Stalled).Bool("fail_syncs", st.FailSyncs).
				Bool("fail_writes", st.FailWrites).Msg("disk fault")
			return http.StatusOK, st, nil
		}
	}
	writes := func(r *http.Request) bool { return r.URL.Query().Get("writes") == "true" }
	routes := map[string]func(*http.Request) (int, any, error){
		"GET /debug/fs": func(*http.Request) (int, any, error) { return http.StatusOK, f.Stats(), nil },
		"POST /debug/fs/stall": act("stall", func(r *http.Request) {
			if writes(r) {
				f.StallWrites()
			} else {
				f.Stall()
			}
		}),
		"POST /debug/fs/resume": act("resume", func(*http.Request) { f.Resume() }),
		"POST /debug/fs/fail": act("fail", func(r *http.Request) {
			f.FailSyncs()
			if writes(r) {
				f.FailWrites()
			}
		}),
		"POST /debug/fs/heal": act("heal", func(*http.Request) { f.Heal() }),
	}
	for pattern, h := range routes {
		b.http.Handle(pattern, b.adminHandler(h))
	}
}
