// Command brine-master runs the brine master daemon.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/logging"
	"github.com/brine-cm/brine/pkg/master"
)

func main() {
	var cfgPath, dataDir, iface, socket, logLevel string
	var port int
	var autoAccept bool
	cmd := &cobra.Command{
		Use:           "brine-master",
		Short:         "The brine master: publishes jobs to minions, serves brinectl and the webhook",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadMaster(cfgPath, cmd.Flags().Changed("config"))
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("data-dir") {
				cfg.DataDir = dataDir
				if !f.Changed("socket") && cfg.Socket == config.DefaultMaster().DataDir+"/control.sock" {
					cfg.Socket = dataDir + "/control.sock"
				}
			}
			if f.Changed("interface") {
				cfg.Interface = iface
			}
			if f.Changed("port") {
				cfg.Port = port
			}
			if f.Changed("socket") {
				cfg.Socket = socket
			}
			if f.Changed("auto-accept") {
				cfg.AutoAccept = autoAccept
			}
			if f.Changed("log-level") {
				cfg.LogLevel = logLevel
			}
			log, err := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			m, err := master.New(cfg, master.Options{Logger: log, ConfigPath: cfgPath})
			if err != nil {
				return err
			}
			if err := m.Start(ctx); err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			for {
				select {
				case <-ctx.Done():
					log.Info("shutting down: draining reactions")
					dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					if err := m.Drain(dctx); err != nil {
						log.Warn("drain incomplete", "err", err)
					}
					cancel()
					m.Stop()
					return nil
				case <-hup:
					if err := m.Reload(); err != nil {
						log.Error("reload failed; keeping the running configuration", "err", err)
					}
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "/etc/brine/master", "master config file")
	f.StringVar(&dataDir, "data-dir", "", "override data_dir")
	f.StringVar(&iface, "interface", "", "override interface (minion port address)")
	f.IntVar(&port, "port", 0, "override port")
	f.StringVar(&socket, "socket", "", "override the control socket path")
	f.BoolVar(&autoAccept, "auto-accept", false, "accept all minion keys (insecure; for demos)")
	f.StringVarP(&logLevel, "log-level", "l", "", "debug, info, warning, error")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "brine-master:", err)
		os.Exit(1)
	}
}
