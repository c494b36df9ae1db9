#!/usr/bin/perl
# Client scenarios for the integration tests (cmd/gearsched/clients_test.go),
# using Gearman::Client (libgearman-client-perl).
#
# Usage: perl perl_client.pl HOST PORT SCENARIO
#
# Prints a line-based transcript; job handles are never printed because
# they differ between servers.
use strict;
use warnings;
use Gearman::Client;

@ARGV == 3 or die "usage: perl_client.pl HOST PORT SCENARIO\n";
my ($host, $port, $scenario) = @ARGV;
$| = 1;

my $client = Gearman::Client->new(
    job_servers     => [ { host => $host, port => $port } ],
    command_timeout => 10,
);

# handle_ok describes a handle as returned by dispatch_background
# ("HOST:PORT//H:...") without printing it.
sub handle_ok {
    my ($h) = @_;
    return defined $h && $h =~ m{^\S+//[\x21-\x7e]{1,63}$} ? "ok" : "bad(" . ($h // "undef") . ")";
}

if ($scenario eq "bg") {
    # Background jobs on pl_rec while no worker runs.
    my $h1 = $client->dispatch_background("pl_rec", "b1", { uniq => "pl-uniq" });
    print "dispatch_background handle ", handle_ok($h1), "\n";
    my $h2 = $client->dispatch_background("pl_rec", "b1-ignored", { uniq => "pl-uniq" });
    print "dispatch_background same uniq: same handle ", ($h1 eq $h2 ? "yes" : "no"), "\n";
    my $h3 = $client->dispatch_background("pl_rec", "b2", { uniq => "pl-uniq-2", priority => "high" });
    print "dispatch_background high handle ", handle_ok($h3), "\n";
    my $h4 = $client->dispatch_background("pl_rec", "b3", { uniq => "pl-uniq-3", priority => "low" });
    print "dispatch_background low handle ", handle_ok($h4), "\n";
    my $st = $client->get_status($h1);
    printf "get_status known=%d running=%d\n", ($st ? $st->known : -1), ($st ? $st->running : -1);
}
elsif ($scenario eq "fg") {
    # Foreground jobs; a perl_worker.pl runs them.
    my $r = $client->do_task("pl_rev", "hello");
    print "do_task ", (defined $r ? $$r : "undef"), "\n";
    my $f = $client->do_task("pl_fail", "x");
    print "do_task fail ", (defined $f ? $$f : "undef"), "\n";

    my @lines;
    my $ts = $client->new_task_set;
    for my $arg (qw(abc xyz)) {
        $ts->add_task("pl_rev", $arg, {
            on_complete => sub { push @lines, "task $arg complete ${$_[0]}" },
            on_fail     => sub { push @lines, "task $arg fail" },
        });
    }
    $ts->add_task("pl_fail", "boom", {
        on_complete => sub { push @lines, "task boom complete ${$_[0]}" },
        on_fail     => sub { push @lines, "task boom fail" },
    });
    $ts->wait(timeout => 10);
    print "$_\n" for sort @lines;
}
elsif ($scenario eq "results") {
    # Results that Gearman::Worker sends as a bare handle ("0" and "", both
    # arriving as ""), between ordinary ones; perl_worker.pl's pl_result
    # returns them. The first job that does not complete within 5 s ends
    # the scenario.
    for my $arg (qw(zero empty normal zero after)) {
        my $r = $client->do_task("pl_result", $arg, { timeout => 5 });
        print "do_task $arg ", (defined $r ? "[$$r]" : "undef"), "\n";
        last unless defined $r;
    }
}
else {
    die "unknown scenario $scenario\n";
}
