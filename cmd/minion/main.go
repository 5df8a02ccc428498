// Command brine-minion runs the brine minion daemon.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/logging"
	"github.com/brine-cm/brine/pkg/minion"
)

func main() {
	var cfgPath, id, masterAddr, dataDir, logLevel, hostsFile, finger string
	var grainFlags []string
	cmd := &cobra.Command{
		Use:           "brine-minion",
		Short:         "The brine minion: runs jobs from its master",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadMinion(cfgPath, cmd.Flags().Changed("config"))
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("id") {
				cfg.ID = id
			}
			if f.Changed("master") {
				cfg.Master = config.StringList{masterAddr}
			}
			if f.Changed("data-dir") {
				cfg.DataDir = dataDir
			}
			if f.Changed("hosts-file") {
				cfg.HostsFile = hostsFile
			}
			if f.Changed("master-finger") {
				cfg.MasterFinger = finger
			}
			if f.Changed("log-level") {
				cfg.LogLevel = logLevel
			}
			if err := config.ApplyGrainFlags(&cfg, grainFlags); err != nil {
				return err
			}
			log, err := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// SIGHUP would otherwise end the process with a status systemd
			// treats as clean, leaving the node unmanaged. The minion has
			// nothing to reload that a restart would not do better.
			signal.Ignore(syscall.SIGHUP)
			m, err := minion.New(cfg, log)
			if err != nil {
				return err
			}
			return m.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "/etc/brine/minion", "minion config file")
	f.StringVar(&id, "id", "", "override id")
	f.StringVar(&masterAddr, "master", "", "override master (host or host:port)")
	f.StringVar(&dataDir, "data-dir", "", "override data_dir")
	f.StringVar(&hostsFile, "hosts-file", "", "override hosts_file")
	f.StringVar(&finger, "master-finger", "", "override master_finger")
	f.StringArrayVar(&grainFlags, "grain", nil, "static grain KEY=VALUE (VALUE parsed as YAML; repeatable)")
	f.StringVarP(&logLevel, "log-level", "l", "", "debug, info, warning, error")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "brine-minion:", err)
		os.Exit(1)
	}
}
