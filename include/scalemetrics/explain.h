/* SPDX-License-Identifier: MIT */
#ifndef SM_EXPLAIN_H
#define SM_EXPLAIN_H

/* `scalemetrics explain --hpa FILE.yaml|- --server URL [--ca-file F | --insecure]
 * [--current-replicas N] [--namespace NS] [--pod-selector SEL] [--token-file F]
 * [--cert F --key F] [--timeout DURATION]`: reads autoscaling/v2 HorizontalPodAutoscalers
 * (a file, a multi-document stream, `kubectl get hpa X -o yaml` or a List of them), queries
 * the server for each External, Object and Pods metric exactly as the HPA controller would,
 * and prints per metric the request, the items, the value the HPA uses, the target, the
 * ratio and the proposal, then the decision (largest proposal, tolerance, min/max).
 * argv[0] is the subcommand's name; options follow. Writes to stdout and stderr.
 * Returns the process exit code: 0 when every metric was fetched and computed, 1 when any
 * failed (the server's Status message is printed), 2 on usage or input errors. */
int sm_explain_main(int argc, char **argv);

#endif
