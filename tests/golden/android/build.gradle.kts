// DigitsClassifier: an Android library module. Plugin versions come from the build it joins (its root or
// settings `plugins {}`; this folder's settings.gradle.kts when it is built alone), so it drops into an app
// that already applies AGP. AGP 9 compiles Kotlin itself (built-in Kotlin); before 9, or with
// android.builtInKotlin=false, the Kotlin Android plugin is applied here.
plugins {
    id("com.android.library")
    id("com.google.protobuf")
    `maven-publish`
}

val agpMajor = com.android.Version.ANDROID_GRADLE_PLUGIN_VERSION.substringBefore('.').toInt()
val builtInKotlin = agpMajor >= 9 && providers.gradleProperty("android.builtInKotlin").orNull != "false"
if (!builtInKotlin) apply(plugin = "org.jetbrains.kotlin.android")

group = "com.example.digits"
version = "1.0.0"

android {
    namespace = "com.example.digits"
    compileSdk = 36
    defaultConfig {
        minSdk = 24  // LiteRT 2.3.0's own manifest asks for no more (README.md)
        consumerProguardFiles("consumer-rules.pro")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    androidResources {
        noCompress += listOf("tflite")  // LiteRT maps the model from the APK; a compressed asset cannot be mapped
    }
    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
    }
}

tasks.withType(org.jetbrains.kotlin.gradle.tasks.KotlinJvmCompile::class.java).configureEach {
    compilerOptions.jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
}

dependencies {
    implementation("com.google.ai.edge.litert:litert:2.3.0")
    implementation("com.google.ai.edge.litert:litert-gpu:2.3.0")  // the profile lists a GPU delegate
    implementation("io.grpc:grpc-okhttp:1.85.0")
    implementation("io.grpc:grpc-protobuf-lite:1.85.0")
    implementation("io.grpc:grpc-stub:1.85.0")
    implementation("com.google.protobuf:protobuf-javalite:3.25.9")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
    compileOnly("org.apache.tomcat:annotations-api:6.0.53")  // @Generated in grpc-java's stubs
}

protobuf {
    protoc {
        artifact = "com.google.protobuf:protoc:3.25.9"
    }
    plugins {
        create("grpc") {
            artifact = "io.grpc:protoc-gen-grpc-java:1.85.0"
        }
    }
    generateProtoTasks {
        all().forEach { task ->
            task.builtins {
                create("java") {
                    option("lite")
                }
            }
            task.plugins {
                create("grpc") {
                    option("lite")
                }
            }
        }
    }
}

// `./gradlew publishToMavenLocal` (or a `repositories {}` of your own) publishes com.example.digits:digits-classifier:1.0.0
publishing {
    publications {
        register<MavenPublication>("release") {
            artifactId = "digits-classifier"
            afterEvaluate {
                from(components["release"])
            }
        }
    }
}
