/*
 * Copyright (c) dataflywheel.blueprint maintainers
 * Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
 *
 * Starts one OpenSearch node in this JVM, listening on 127.0.0.1 only, with the modules the
 * collection needs loaded from the class path (HTTP transport, delete-by-query, extra mappers).
 * The OpenSearch distribution would load those modules from its modules/ folder; the artifacts
 * on Maven Central are the same code, so a Node subclass hands the plugin classes over directly.
 *
 *   java -cp 'lib/*' dfw.searchengine.Main --home DIR --http-port PORT [--ready-file FILE]
 */
package dfw.searchengine;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public final class Main {

    /** A node whose plugins come from the class path (Node's own constructor for that is protected). */
    static final class ClasspathNode extends Node {
        ClasspathNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    private Main() {
    }

    private static String arg(String[] args, String name, String fallback) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals(name)) {
                return args[i + 1];
            }
        }
        if (fallback == null) {
            throw new IllegalArgumentException("missing " + name);
        }
        return fallback;
    }

    public static void main(String[] args) throws Exception {
        Path home = Paths.get(arg(args, "--home", null)).toAbsolutePath();
        String httpPort = arg(args, "--http-port", "0");
        String readyFile = arg(args, "--ready-file", "");
        Files.createDirectories(home.resolve("config"));
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));

        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "dfw-tests")
            .put("node.name", "dfw-tests-0")
            .put("network.host", "127.0.0.1")
            .put("http.port", httpPort)
            .put("transport.port", "0")
            .put("discovery.type", "single-node")
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            // a test machine's disk may be fuller than a server's; never go read-only for that
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true)
            .put("logger.level", System.getProperty("dfw.log.level", "INFO"))
            .build();
        // console logging (the launcher sends it to a log file); no log4j2.properties needed
        LogConfigurator.registerErrorListener();
        LogConfigurator.configureWithoutConfig(settings);
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), home.resolve("config"), () -> "dfw-tests-0");
        List<Class<? extends Plugin>> plugins = List.of(
            Netty4Plugin.class, ReindexPlugin.class, MapperExtrasPlugin.class);

        CountDownLatch stopped = new CountDownLatch(1);
        Node node = new ClasspathNode(environment, plugins);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "dfw-search-engine-shutdown"));
        node.start();

        String address = node.injector().getInstance(HttpServerTransport.class)
            .boundAddress().publishAddress().toString();
        String url = "http://" + address;
        if (!readyFile.isEmpty()) {
            Path tmp = Paths.get(readyFile + ".tmp");
            Files.write(tmp, url.getBytes(StandardCharsets.UTF_8));
            Files.move(tmp, Paths.get(readyFile), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        }
        System.out.println("[search-engine] OpenSearch listening on " + url);
        System.out.flush();
        stopped.await();
    }
}
