package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Completion of topic, group and broker names asks the cluster, briefly:
// a shell must not hang on Tab when no broker is reachable.
const completeTimeout = 2 * time.Second

type completeFunc = func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective)

// completeNames lists names from the cluster for a completion. Global
// flags are parsed but PersistentPreRunE does not run for completions,
// so settings are resolved here.
func (a *app) completeNames(cmd *cobra.Command, toComplete string, list func(context.Context) ([]string, error)) ([]cobra.Completion, cobra.ShellCompDirective) {
	if err := a.resolve(cmd); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
	defer cancel()
	names, err := list(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeTopics completes topic names for the first n arguments (-1:
// every argument).
func (a *app) completeTopics(n int) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if n >= 0 && len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.completeNames(cmd, toComplete, func(ctx context.Context) ([]string, error) {
			c, err := a.client()
			if err != nil {
				return nil, err
			}
			ts, err := c.Admin().ListTopics(ctx, false)
			var out []string
			for _, t := range ts {
				out = append(out, t.Name)
			}
			return out, err
		})
	}
}

func (a *app) completeGroups(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 && cmd.Name() != "delete" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeNames(cmd, toComplete, func(ctx context.Context) ([]string, error) {
		c, err := a.client()
		if err != nil {
			return nil, err
		}
		gs, err := c.Admin().ListGroups(ctx)
		var out []string
		for _, g := range gs {
			out = append(out, g.Name)
		}
		return out, err
	})
}

func (a *app) completeBrokers(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeNames(cmd, toComplete, func(ctx context.Context) ([]string, error) {
		c, err := a.client()
		if err != nil {
			return nil, err
		}
		st, err := c.Admin().Cluster(ctx)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, b := range st.Brokers {
			out = append(out, fmt.Sprint(b.ID))
		}
		return out, nil
	})
}
